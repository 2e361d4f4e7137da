from __future__ import annotations

from pydantic import Field

from stella_services.runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    host: str = Field(
        default="127.0.0.1",
        validation_alias="STELLA_GATEWAY_HOST",
        description="address the HTTP server binds",
    )
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias="STELLA_GATEWAY_PORT",
        description="0 picks a free port",
    )
    public_url: str = Field(
        default="", description="base URL clients reach (default http://<host>:<port>)"
    )
    api_keys: str = Field(
        default="", description="comma-separated API keys (hashed at start, never logged)"
    )
    history_addr: str = Field(default="127.0.0.1:50051", description="the recorder's gRPC")
    idle_timeout_s: float = Field(default=300.0, gt=0, description="no activity ends a session")
    max_duration_s: float = Field(default=3600.0, gt=0, description="a session's longest life")
    disconnect_grace_s: float = Field(
        default=3.0, ge=0, description="a client that left and did not come back ends its session"
    )
    max_body_bytes: int = Field(
        default=1 << 20,
        gt=0,
        validation_alias="STELLA_GATEWAY_MAX_BODY_BYTES",
        description="largest REST request body; a larger one is answered 413",
    )
    media_token_ttl_s: float = Field(
        default=600.0, gt=0, description="life of the token that opens a session's media"
    )
    webrtc_hosts: str = Field(
        default="127.0.0.1",
        description="comma-separated addresses WebRTC offers and accepts as ICE candidates",
    )
    livekit_url: str = Field(default="", validation_alias="LIVEKIT_URL")
    livekit_api_key: str = Field(default="", validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: str = Field(default="", validation_alias="LIVEKIT_API_SECRET")

    @property
    def livekit_enabled(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)

    def webrtc_host_list(self) -> list[str]:
        return [h.strip() for h in self.webrtc_hosts.split(",") if h.strip()]
