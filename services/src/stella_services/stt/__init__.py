"""The stt service: voice activity and speech recognition per session."""
