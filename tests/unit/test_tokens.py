import time

import pytest

from stella_services.runtime import tokens

SECRET = "unit-test-secret-0123456789-0123456789"


def test_round_trip_and_scope() -> None:
    t = tokens.mint(SECRET, "s1", tokens.Scope.HISTORY, 60)
    claims = tokens.verify(SECRET, t)
    assert (claims.subject, claims.scope) == ("s1", tokens.Scope.HISTORY)
    assert claims.expires_at >= int(time.time()) + 59
    assert claims.allows_session("s1") and not claims.allows_session("s2")
    admin = tokens.verify(SECRET, tokens.mint(SECRET, "ops", tokens.Scope.ADMIN, 60))
    assert admin.allows_session("anything")


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("garbage", "invalid token"),
        (tokens.mint(SECRET, "s1", tokens.Scope.HISTORY, -1), "expired"),
        (
            tokens.mint("another-secret-0123456789-0123456789", "s1", tokens.Scope.HISTORY, 60),
            "invalid token",
        ),
    ],
)
def test_bad_tokens_are_refused(token: str, why: str) -> None:
    with pytest.raises(tokens.TokenError, match=why):
        tokens.verify(SECRET, token)


def test_bearer_header() -> None:
    assert tokens.bearer({"authorization": "Bearer abc"}) == "abc"
    assert tokens.bearer({"authorization": "Basic abc"}) is None
    assert tokens.bearer({}) is None
