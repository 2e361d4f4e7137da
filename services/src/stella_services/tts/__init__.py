"""The tts service: agent text to paced 16 kHz audio frames."""
