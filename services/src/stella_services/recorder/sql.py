"""SQL the recorder runs, built by pure functions, and the read-only guard for ``Query``."""

from __future__ import annotations

import re

from stella_contracts import HISTORY_MAX_LIMIT

DATABASE = "stella"
EVENTS = f"{DATABASE}.events"
MIGRATIONS = f"{DATABASE}.schema_migrations"

EVENT_COLUMNS = (
    "id",
    "session_id",
    "type",
    "ts",
    "source_service",
    "source_instance",
    "seq",
    "trace",
    "v",
    "role",
    "content",
    "message_type",
    "is_chat",
    "envelope",
)

READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
# Table functions and clauses that reach files or other hosts: refused even inside a SELECT.
_FORBIDDEN = re.compile(
    r"\b(INTO\s+OUTFILE|url|urlCluster|s3|s3Cluster|gcs|azureBlobStorage|hdfs|remote|"
    r"remoteSecure|cluster|clusterAllReplicas|file|fileCluster|mysql|postgresql|mongodb|"
    r"redis|sqlite|jdbc|odbc|executable|input|iceberg|deltaLake|hudi)\s*\(|\bINTO\s+OUTFILE\b",
    re.IGNORECASE,
)


class NotReadOnly(ValueError):
    """The SQL given to ``Query`` would do more than read."""


def create_database_sql() -> str:
    return f"CREATE DATABASE IF NOT EXISTS {DATABASE}"


def create_migrations_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS} "
        "(version String, applied_at DateTime64(6, 'UTC') DEFAULT now64(6)) "
        "ENGINE = MergeTree ORDER BY version"
    )


def history_sql(include_debug: bool) -> str:
    """The newest ``{limit}`` messages of ``{session_id}``, newest first (callers reverse).

    One thread: a history read is a few hundred rows, where thread start-up costs more
    than it saves.
    """
    chat_only = "" if include_debug else "AND is_chat = 1"
    return (
        f"SELECT id, ts, role, content, message_type, envelope FROM {EVENTS} FINAL"
        f" WHERE session_id = {{session_id:String}} {chat_only}"
        " ORDER BY ts DESC, toString(id) DESC LIMIT {limit:UInt32}"  # UUID sorts by halves
        " SETTINGS max_threads = 1"
    )


def existing_ids_sql() -> str:
    return f"SELECT toString(id) FROM {EVENTS} WHERE id IN {{ids:Array(UUID)}}"


def check_history_limit(limit: int) -> None:
    if not 1 <= limit <= HISTORY_MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {HISTORY_MAX_LIMIT}, got {limit}")


def split_statements(script: str) -> list[str]:
    """Split a migration file into statements (comments removed)."""
    return [s.strip() for s in _strip_comments(script).split(";") if s.strip()]


def ensure_read_only(sql: str) -> str:
    """Return the single read statement in ``sql`` or raise :class:`NotReadOnly`.

    The engine also runs it with ``readonly=1``; this check gives a clear error first and
    refuses table functions that would read files or other hosts.
    """
    code = _strip_comments(sql).strip()
    while code.endswith(";"):
        code = code[:-1].rstrip()
    if not code:
        raise NotReadOnly("empty query")
    bare = _blank_literals(code)
    if ";" in bare:
        raise NotReadOnly("only one statement is allowed")
    first = bare.split(None, 1)[0].upper().lstrip("(")
    if first not in READ_KEYWORDS:
        allowed = ", ".join(sorted(READ_KEYWORDS))
        raise NotReadOnly(f"only read queries are allowed ({allowed}); got {first}")
    hit = _FORBIDDEN.search(bare)
    if hit:
        raise NotReadOnly(f"{hit.group(0).rstrip('( ')} is not allowed in analytics queries")
    return code


def _strip_comments(sql: str) -> str:
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = _end_of_quoted(sql, i)
            out.append(sql[i:j])
            i = j
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _blank_literals(sql: str) -> str:
    """Replace the inside of quoted strings and identifiers so keywords there don't count."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        if sql[i] in "'\"`":
            j = _end_of_quoted(sql, i)
            out.append(sql[i] + "_" * max(0, j - i - 2) + sql[i])
            i = j
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def _end_of_quoted(sql: str, start: int) -> int:
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # doubled quote escapes itself
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)
