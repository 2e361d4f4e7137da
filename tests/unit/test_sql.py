import pytest

from stella_services.recorder import sql
from stella_services.recorder.sql import NotReadOnly


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "select count() from stella.events;",
        "  -- the count\nSELECT count() FROM stella.events",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SHOW TABLES FROM stella",
        "DESCRIBE TABLE stella.events",
        "EXPLAIN SELECT 1",
        "SELECT 'a; DROP TABLE x' AS s",
        "SELECT content FROM stella.events WHERE content = 'file(1)'",
    ],
)
def test_reads_are_allowed(query: str) -> None:
    assert (
        sql.ensure_read_only(query)
        .upper()
        .lstrip()
        .startswith(("SELECT", "WITH", "SHOW", "DESC", "EXPLAIN"))
    )


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("", "empty"),
        ("-- only a comment", "empty"),
        ("DROP TABLE stella.events", "only read queries"),
        ("INSERT INTO stella.events SELECT * FROM stella.events", "only read queries"),
        ("SELECT 1; DROP TABLE stella.events", "one statement"),
        ("/* hi */ ALTER TABLE stella.events DELETE WHERE 1", "only read queries"),
        ("SELECT * FROM url('http://example.com/x', CSV)", "url"),
        ("SELECT * FROM file('/etc/passwd')", "file"),
        ("SELECT * FROM remote('10.0.0.1', system.one)", "remote"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO"),
        ("SET readonly = 0", "only read queries"),
    ],
)
def test_anything_else_is_refused_with_a_reason(query: str, why: str) -> None:
    with pytest.raises(NotReadOnly) as info:
        sql.ensure_read_only(query)
    assert why in str(info.value)


def test_history_sql_filters_chat_unless_debug() -> None:
    assert "is_chat = 1" in sql.history_sql(include_debug=False)
    assert "is_chat" not in sql.history_sql(include_debug=True)
    text = sql.history_sql(False)
    # newest N picked (the store reverses them to oldest first)
    assert "ORDER BY ts DESC, toString(id) DESC LIMIT {limit:UInt32}" in text
    assert "FINAL" in text


@pytest.mark.parametrize("limit", [0, -1, 501])
def test_history_limit_bounds(limit: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 500"):
        sql.check_history_limit(limit)


def test_split_statements_drops_comments_and_blanks() -> None:
    script = (
        "-- a\nCREATE TABLE a (x UInt8) ENGINE=Memory;\n\n"
        "/* b */ CREATE TABLE b (y UInt8) ENGINE=Memory;\n"
    )
    assert sql.split_statements(script) == [
        "CREATE TABLE a (x UInt8) ENGINE=Memory",
        "CREATE TABLE b (y UInt8) ENGINE=Memory",
    ]
