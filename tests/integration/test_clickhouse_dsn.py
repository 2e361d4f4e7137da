"""An http(s) CLICKHOUSE_URL reaches clickhouse-connect's HTTP client as written.

No ClickHouse server can run here, so the real client is pointed at a closed loopback port
and its connection error shows which scheme, host and port it used.
"""

from __future__ import annotations

import clickhouse_connect
import pytest

from stella_services.recorder.store import client_interface
from stella_services.runtime.nats_server import free_port


def test_the_scheme_chooses_the_interface_and_chdb_is_left_alone() -> None:
    assert client_interface("https://stella:pw@ch.example.com/") == "https"
    assert client_interface("http://stella:pw@clickhouse:8123/") == "http"
    assert client_interface("chdb:///var/lib/stella/clickhouse") is None


@pytest.mark.parametrize(
    ("scheme", "pool"), [("http", "HTTPConnection"), ("https", "HTTPSConnection")]
)
def test_the_client_connects_with_the_dsns_scheme_host_and_port(scheme: str, pool: str) -> None:
    port = free_port()
    dsn = f"{scheme}://stella:secret@127.0.0.1:{port}/"
    with pytest.raises(clickhouse_connect.driver.exceptions.OperationalError) as caught:
        clickhouse_connect.get_client(
            dsn=dsn, interface=client_interface(dsn), connect_timeout=2, send_receive_timeout=2
        )
    message = str(caught.value)
    assert f"{pool}Pool(host='127.0.0.1', port={port})" in message
    assert "secret" not in message
