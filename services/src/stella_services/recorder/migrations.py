"""ClickHouse schema migrations from ``deploy/clickhouse/migrations`` (``NNNN_name.sql``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "STELLA_CLICKHOUSE_MIGRATIONS"


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
    if os.environ.get(ENV_DIR):
        candidates.append(Path(os.environ[ENV_DIR]))
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
