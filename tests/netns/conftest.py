"""These tests run in a network namespace holding only loopback (see test_private_network)."""

from __future__ import annotations

import socket

import pytest


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(autouse=True)
def _private_network() -> None:
    if not only_loopback():
        pytest.fail("tests/netns must run inside `unshare -n` (only lo may exist)")
