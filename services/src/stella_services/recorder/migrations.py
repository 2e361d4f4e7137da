"""ClickHouse schema migrations from ``deploy/clickhouse/migrations`` (``NNNN_name.sql``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_DIR = "STELLA_CLICKHOUSE_MIGRATIONS"


class MigrationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STELLA_", extra="ignore")

    clickhouse_migrations: Path | None = Field(
        default=None, description="folder of NNNN_name.sql migrations (default: found)"
    )


class MigrationsNotFound(FileNotFoundError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def migrations_dir() -> Path:
    """Where the .sql files are: the env override, the copy inside a built wheel, or the repo."""
    candidates = []
    configured = MigrationSettings().clickhouse_migrations
    if configured is not None:
        candidates.append(configured)
    here = Path(__file__).resolve()
    candidates.append(here.parent / "migrations")  # wheel: force-included by hatch
    candidates.extend(p / "deploy" / "clickhouse" / "migrations" for p in here.parents)
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    raise MigrationsNotFound(
        f"no ClickHouse migrations found; set {ENV_DIR} to the deploy/clickhouse/migrations folder"
    )


def discover(directory: Path) -> list[Migration]:
    found = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [Migration(version=p.stem, path=p) for p in found]
