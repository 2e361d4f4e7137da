"""The platform secret that signs tokens: ``STELLA_SECRET``, else a file in the data folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_LENGTH = 32


class SecretSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STELLA_", extra="ignore")

    secret: str = Field(default="", description="signs session and admin tokens (>= 32 chars)")


class SecretError(RuntimeError):
    pass


def platform_secret(data_dir: Path, create: bool = True) -> str:
    """``STELLA_SECRET`` if set; else ``<data_dir>/secret``, created (mode 600) when missing."""
    given = SecretSettings().secret
    if given:
        if len(given) < MIN_LENGTH:
            raise SecretError(f"STELLA_SECRET must be at least {MIN_LENGTH} characters")
        return given
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise SecretError(f"no STELLA_SECRET and no {path}: start the platform with `stella up`")
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this platform made it just now
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value
