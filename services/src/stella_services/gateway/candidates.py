"""Which ICE candidates an SDP may carry (pure): only the addresses the gateway allows.

Locally that is loopback alone (docs/testing.md: no traffic leaves the machine); a deployment
lists its public addresses in ``STELLA_WEBRTC_HOSTS``.
"""

from __future__ import annotations

import ipaddress


def _address(candidate_line: str) -> str | None:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    parts = candidate_line.split()
    return parts[4] if len(parts) >= 8 else None


def allowed_address(address: str, allowed: set[str]) -> bool:
    if address in allowed:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # an mDNS name (xxxx.local) or garbage: nothing we can check
    return ip.is_loopback and any(_is_loopback(a) for a in allowed)


def _is_loopback(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return value == "localhost"


def keep_candidates(sdp: str, allowed: set[str]) -> tuple[str, int]:
    """The SDP without candidates outside ``allowed``; also how many were dropped."""
    kept: list[str] = []
    dropped = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            address = _address(line)
            if address is None or not allowed_address(address, allowed):
                dropped += 1
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", dropped


def host_addresses(allowed: list[str], use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """What aioice may gather host candidates on, out of ``allowed``."""
    out = []
    for value in allowed:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            continue
        if (ip.version == 4 and use_ipv4) or (ip.version == 6 and use_ipv6):
            out.append(value)
    return out
