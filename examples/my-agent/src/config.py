from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    # LiveKit connection
    livekit_url: str
    livekit_api_key: str
    livekit_api_secret: str

    # OpenAI
    openai_api_key: str
    openai_model: str = "gpt-4o"

    # Audio pipeline
    stt_provider: str = "sherpa"
    tts_provider: str = "kokoro"

    # Session
    room_name: str
    participant_identity: str = "agent"

    class Config:
        env_file = ".env"


settings = Settings()
