"""``stella up``: the whole platform on this machine, one process per service."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console

from stella_services.cli.plan import (
    EXAMPLE_AGENT,
    ProcessSpec,
    example_dir,
    local_llm_url,
    local_plan,
)
from stella_services.cli.settings import CliSettings
from stella_services.cli.supervision import RestartPolicy, restart_delay
from stella_services.gateway import URL_LINE
from stella_services.gateway.keys import create_local_key
from stella_services.runtime.lifecycle import READY_LINE
from stella_services.runtime.nats_server import (
    LocalNats,
    NatsUnavailable,
    answers_with_jetstream,
    cluster_url,
    free_port,
    local_cluster,
    port_in_use,
    url_host_port,
    wait_until_answers,
)
from stella_services.runtime.secret import platform_secret

UP_LINE = "STELLA-UP"  # printed once everything is ready; tests and scripts wait for it
CALL_SAMPLE = Path("examples") / "audio" / "create-task.wav"
# soft_wrap: a printed command or key must never be broken by a newline (copy and paste)
console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    log_path: Path
    ready: threading.Event = field(default_factory=threading.Event)
    url: str = ""  # what the gateway announced

    def watch_stdout(self) -> None:
        assert self.process.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in self.process.stdout:
                if line.startswith(URL_LINE):
                    self.url = line.split()[1]
                if line.startswith(READY_LINE):
                    self.ready.set()
                log.write(line)
                log.flush()


def _ensure_nats(settings: CliSettings, logs: Path, cluster: int) -> tuple[str, list[LocalNats]]:
    """NATS for the platform: the one at ``NATS_URL`` if it answers, else ours; with
    ``cluster`` > 1 always our own cluster of that many nodes on loopback."""
    if cluster > 1:
        nodes = local_cluster(cluster, settings.data_dir / "nats-cluster", logs)
        with console.status(f"starting a {cluster}-node nats-server cluster (JetStream)…"):
            for node in nodes:
                node.start()
            url = cluster_url(nodes)
            asyncio.run(wait_until_answers(url, timeout=60))
        pids = ", ".join(str(n.process.pid) for n in nodes if n.process is not None)
        console.print(f"[green]✓[/] nats-server cluster of {cluster} at {url} (pids {pids})")
        return url, nodes
    url = settings.nats_url
    if asyncio.run(answers_with_jetstream(url)):
        console.print(f"[green]✓[/] NATS answers at {url} (JetStream on)")
        return url, []
    host, port = url_host_port(url)
    if host not in ("127.0.0.1", "localhost") or port_in_use(host, port):
        port = 0  # something else holds the port (or a remote URL): run ours on a free one
    local = LocalNats(store_dir=settings.data_dir / "nats", port=port, log_file=logs / "nats.log")
    with console.status("starting nats-server (JetStream)…"):
        local.start()
    console.print(
        f"[green]✓[/] nats-server started at {local.url} (pid {local.process.pid})"  # type: ignore[union-attr]
    )
    return local.url, [local]


def _start(spec: ProcessSpec, env: dict[str, str], logs: Path) -> Child:
    name = spec.name
    process = subprocess.Popen(
        [sys.executable, "-m", "stella_services", "serve", spec.service],
        env={**env, **spec.env},
        cwd=spec.cwd,
        stdout=subprocess.PIPE,
        stderr=open(logs / f"{name}.err.log", "a"),  # noqa: SIM115
        text=True,
        bufsize=1,
    )
    child = Child(name, process, logs / f"{name}.log")
    threading.Thread(target=child.watch_stdout, daemon=True, name=f"{name}-stdout").start()
    return child


def _free_or(port: int) -> int:
    """``port`` when nothing listens on it, else 0 (the service picks a free one)."""
    return 0 if port_in_use("127.0.0.1", port) else port


def _stop_all(children: list[Child], nats: list[LocalNats]) -> None:
    for child in reversed(children):
        if child.process.poll() is None:
            child.process.terminate()
    for child in reversed(children):
        try:
            child.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
    for node in nats:
        node.stop()


def _supervise(
    children: list[Child],
    plan: list[ProcessSpec],
    env: dict[str, str],
    logs: Path,
    nats: list[LocalNats],
    policy: RestartPolicy = RestartPolicy(),
) -> None:
    """Restart whatever exits on its own (nats-server included) with backoff; return never,
    raise ``typer.Exit(1)`` when one crashes too often (see :mod:`supervision`)."""
    specs = {spec.name: spec for spec in plan}
    crashes: dict[str, list[float]] = {}
    restart_at: dict[str, float] = {}

    def crashed(name: str, code: int | None, err_log: Path) -> None:
        now = time.monotonic()
        crashes.setdefault(name, []).append(now)
        delay = restart_delay(crashes[name], now, policy)
        if delay is None:
            console.print(
                f"[red]{name} crashed {len(crashes[name])} times within "
                f"{policy.window_s:g} s (last exit code {code}); see {err_log}. "
                "Stopping the platform.[/]"
            )
            raise typer.Exit(1)
        console.print(
            f"[yellow]{name} exited with {code}; restarting in {delay:g} s (see {err_log})[/]"
        )
        restart_at[name] = now + delay

    def node_name(i: int) -> str:
        return "nats-server" if len(nats) == 1 else f"nats-server-{i + 1}"

    while True:
        for i, node in enumerate(nats):
            name, process = node_name(i), node.process
            if process is not None and process.poll() is not None and name not in restart_at:
                crashed(name, process.returncode, node.log_file or logs / "nats.log")
        for child in children:
            if child.name not in restart_at and child.process.poll() is not None:
                crashed(child.name, child.process.returncode, logs / f"{child.name}.err.log")
        now = time.monotonic()
        for i, node in enumerate(nats):
            name = node_name(i)
            if restart_at.get(name, now + 1) <= now:
                del restart_at[name]
                try:
                    node.start()  # same port and store: the services reconnect by themselves
                    console.print(f"[green]✓[/] {name} restarted (pid {node.process.pid})")  # type: ignore[union-attr]
                except NatsUnavailable as exc:
                    crashed(name, None, node.log_file or logs / "nats.log")
                    console.print(f"[yellow]{name} did not restart: {exc}[/]")
        for i, child in enumerate(children):
            if restart_at.get(child.name, now + 1) <= now:
                del restart_at[child.name]
                children[i] = _start(specs[child.name], env, logs)
                console.print(f"[green]✓[/] {child.name} restarted (pid {children[i].process.pid})")
        time.sleep(0.2)


def up(
    services: list[str] | None = typer.Option(None, "--service", "-s", help="start only these"),
    ready_timeout: float = typer.Option(120.0, help="seconds to wait for each service"),
    cluster: int = typer.Option(
        1, "--cluster", min=1, max=5, help="run this many NATS nodes (3: events kept R3)"
    ),
    replicas: int = typer.Option(
        1,
        "--replicas",
        min=1,
        max=8,
        help="run this many replicas of each service but the recorder and the local llm",
    ),
) -> None:
    """Start NATS (unless NATS_URL answers), ClickHouse (embedded) and every service."""
    settings = CliSettings()
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # the agents must know the llm's port before it starts: a fixed one, not 0
    llm_port = settings.llm_port or _free_or(8090) or free_port()
    try:
        plan = local_plan(
            data_dir,
            dict(os.environ),
            example_dir(settings.example_agent_dir),
            services,
            llm_port,
            replicas,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    platform_secret(data_dir)  # made once here, so the children never race to create it
    new_key = None if settings.api_keys else create_local_key(data_dir)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT explicitly too: a shell starting us in the background would have it ignored.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    children: list[Child] = []
    nats: list[LocalNats] = []
    try:
        nats_url, nats = _ensure_nats(settings, logs, cluster)
        env = {**os.environ, "NATS_URL": nats_url, "STELLA_DATA_DIR": str(data_dir)}
        if cluster > 1:  # every stream and bucket on three nodes: one may die
            env["STELLA_STREAM_REPLICAS"] = str(min(3, cluster))
        env.setdefault("STELLA_GATEWAY_PORT", str(_free_or(8080)))
        gateways = [spec.name for spec in plan if spec.service == "gateway"]
        for i, spec in enumerate(plan):
            if spec.name in gateways[1:]:  # the first on the usual port, the others anywhere
                plan[i] = spec = replace(spec, env={**spec.env, "STELLA_GATEWAY_PORT": "0"})
            name = spec.name
            with console.status(f"starting {name}…"):
                child = _start(spec, env, logs)
                children.append(child)
                deadline = time.monotonic() + ready_timeout
                while not child.ready.wait(0.1):
                    if child.process.poll() is not None or time.monotonic() > deadline:
                        why = "exited" if child.process.poll() is not None else "timed out"
                        console.print(f"[red]✗ {name} {why}; see {logs / (name + '.err.log')}[/]")
                        raise typer.Exit(1)
            console.print(f"[green]✓[/] {name} ready (pid {child.process.pid})")
        urls = [c.url for c in children if c.name in gateways]
        gateway = urls[0] if urls else ""
        has_agent = any(p.name == "agent-runner" for p in plan)
        llm = local_llm_url(llm_port) if any(p.name == "llm" for p in plan) else ""
        _summary(settings, nats_url, data_dir, logs, has_agent, gateway, new_key, llm)
        if len(urls) > 1:
            console.print(f"  gateways       {', '.join(urls)}  (any one runs any call)")
            console.print()
        print(UP_LINE, flush=True)
        for i, spec in enumerate(plan):  # a restarted gateway comes back on its own port
            url = next((c.url for c in children if c.name == spec.name and c.url), "")
            if url:
                port = url.rsplit(":", 1)[1].split("/")[0]
                plan[i] = replace(spec, env={**spec.env, "STELLA_GATEWAY_PORT": port})
        _supervise(children, plan, env, logs, nats)
    except KeyboardInterrupt:
        console.print("\nstopping…")
    finally:
        _stop_all(children, nats)
        console.print("[green]stopped[/]")


def _summary(
    settings: CliSettings,
    nats_url: str,
    data_dir: Path,
    logs: Path,
    agent: bool,
    gateway: str,
    new_key: str | None,
    llm: str,
) -> None:
    dsn = settings.clickhouse_url or f"chdb:///{data_dir / 'clickhouse'} (embedded)"
    key = new_key or "$STELLA_API_KEY"
    console.print()
    console.print("[bold]STELLA is up[/]")
    if gateway:
        fragment = f"#key={new_key}" if new_key else ""
        console.print(f"  playground     [bold]{gateway}/{fragment}[/]")
        console.print(f"  REST API       {gateway}/v1/sessions   (OpenAPI: {gateway}/docs)")
    if new_key:
        console.print(f"  API key        [bold]{new_key}[/]")
        console.print(
            f"                 shown once; stored hashed in {data_dir / 'api-keys'}", style="dim"
        )
    elif not settings.api_keys:
        console.print(
            "  API key        the one printed at the first `make up` "
            f"(delete {data_dir / 'api-keys'} for a new one)"
        )
    console.print(f"  NATS           {nats_url}")
    console.print(f"  ClickHouse     {dsn}")
    console.print(f"  history gRPC   {settings.history_addr}")
    if llm:
        console.print(f"  local LLM      {llm}  (OpenAI API; no OPENAI_API_KEY was set)")
    elif agent:
        where = settings.openai_base_url or "OpenAI"
        console.print(f"  LLM            {where}  (OPENAI_API_KEY / OPENAI_BASE_URL)")
    console.print(f"  logs           {logs}")
    console.print()
    console.print("  in another terminal, from any folder:")
    for command in printed_commands(nats_url, data_dir, settings.history_addr, agent, gateway, key):
        console.print(f"    {command}", markup=False)
    if settings.secret:
        console.print("    (and export STELLA_SECRET as it is set for stella up)", style="dim")
    console.print("  Ctrl-C stops everything.")


def stella_command() -> str:
    """The venv's ``stella`` by its absolute path: it runs from any folder, with nothing on
    PATH (``make setup`` installs uv with ``pip --user``, which a fresh shell may not find)."""
    venv_bin = Path(sys.executable).absolute().parent  # not resolved: the venv, not its base
    script = venv_bin / "stella"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m stella_services"


def call_sample() -> Path:
    """The bundled WAV ``stella call`` speaks, from the checkout (else relative to its root)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / CALL_SAMPLE).exists():
            return parent / CALL_SAMPLE
    return CALL_SAMPLE


def printed_commands(
    nats_url: str, data_dir: Path, history_addr: str, agent: bool, gateway: str, key: str
) -> list[str]:
    """The commands the summary prints, each runnable as printed in a fresh shell."""
    stella = stella_command()
    env = (
        f"NATS_URL={shlex.quote(nats_url)} STELLA_DATA_DIR={shlex.quote(str(data_dir))} "
        f"STELLA_HISTORY_ADDR={shlex.quote(history_addr)}"
    )
    commands = [f"export {env}"]
    if agent and gateway:
        commands.append(
            f"STELLA_GATEWAY_URL={gateway} STELLA_API_KEY={key} "
            f"{stella} call {shlex.quote(str(call_sample()))}"
        )
    if agent:
        commands.append(f"{stella} chat {EXAMPLE_AGENT}")
    commands.append(f"{stella} events")
    commands.append(f'{stella} query "SELECT type, count() FROM stella.events GROUP BY type"')
    return commands
