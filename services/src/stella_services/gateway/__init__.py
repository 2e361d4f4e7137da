"""The gateway: STELLA's only public HTTP surface (REST, WebSocket, WebRTC, LiveKit, playground)."""
