"""API keys: accepted from the environment or a key file, kept only as sha256 digests.

A STELLA key carries 256 random bits, so a fast digest is safe to store (there is no
low-entropy password to brute-force); comparisons run in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

PREFIX = "sk-stella-"
KEY_FILE = "api-keys"  # in the data folder: one sha256 hex digest per line


def generate_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, digests: set[str]) -> None:
        self._digests = frozenset(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, presented: str | None) -> bool:
        if not presented:
            return False
        candidate = digest(presented)
        # every stored digest is compared, so timing tells nothing about which one matched
        found = False
        for stored in self._digests:
            found |= hmac.compare_digest(candidate, stored)
        return found


def read_digests(path: Path) -> set[str]:
    if not path.exists():
        return set()
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def load_keyring(env_keys: str, data_dir: Path) -> KeyRing:
    """Keys from ``STELLA_API_KEYS`` plus the digests of ``<data_dir>/api-keys``."""
    plain = {k.strip() for k in env_keys.split(",") if k.strip()}
    return KeyRing({digest(k) for k in plain} | read_digests(data_dir / KEY_FILE))


def create_local_key(data_dir: Path) -> str | None:
    """A new key for this machine's platform, stored hashed, when none exists yet.

    Returns the plain key (to print once), or None when a key file already holds keys.
    """
    path = data_dir / KEY_FILE
    if read_digests(path):
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# sha256 digests of STELLA API keys, one per line\n")
        f.write(digest(key) + "\n")
    return key
