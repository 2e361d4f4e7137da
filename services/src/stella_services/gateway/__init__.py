"""The gateway: STELLA's only public HTTP surface (REST, WebSocket, WebRTC, LiveKit, playground)."""

URL_LINE = "STELLA-GATEWAY"  # followed by the base URL; `stella up` and tests read it
