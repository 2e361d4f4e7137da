"""A small real backend for the guide's tools: SQLite behind `db` and `task_service`.

TASKS_DB names the database file (default ./data/agent.db). The calls run in a worker
thread so the tools stay async, as the guide writes them.
"""

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SEED_DOCUMENTS = [
    ("Opening hours", "The office is open Monday to Friday, 9:00 to 17:30."),
    ("Support", "Support answers within one business day at support@example.com."),
    ("Returns", "Items can be returned within 30 days with the receipt."),
    ("Shipping", "Standard shipping takes 3 to 5 business days; express takes 1 day."),
]


@dataclass(frozen=True)
class Document:
    title: str
    content: str


@dataclass(frozen=True)
class Task:
    id: int
    title: str
    description: str


def _connect() -> sqlite3.Connection:
    path = Path(os.environ.get("TASKS_DB", "data/agent.db"))
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS documents (title TEXT PRIMARY KEY, content TEXT NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "title TEXT NOT NULL, description TEXT NOT NULL, "
        "created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.executemany("INSERT OR IGNORE INTO documents VALUES (?, ?)", SEED_DOCUMENTS)
    conn.commit()
    return conn


class Database:
    async def search(self, query: str, limit: int = 5) -> list[Document]:
        def run() -> list[Document]:
            words = [w for w in query.lower().split() if len(w) > 2] or [query.lower()]
            clause = " OR ".join("lower(title || ' ' || content) LIKE ?" for _ in words)
            with _connect() as conn:
                rows = conn.execute(
                    f"SELECT title, content FROM documents WHERE {clause} LIMIT ?",
                    [*(f"%{w}%" for w in words), limit],
                ).fetchall()
            return [Document(*row) for row in rows]

        return await asyncio.to_thread(run)


class TaskService:
    async def create(self, title: str, description: str) -> Task:
        def run() -> Task:
            with _connect() as conn:
                cur = conn.execute(
                    "INSERT INTO tasks (title, description) VALUES (?, ?)", (title, description)
                )
                return Task(id=int(cur.lastrowid or 0), title=title, description=description)

        return await asyncio.to_thread(run)


db = Database()
task_service = TaskService()
