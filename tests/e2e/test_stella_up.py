"""`stella up` as a new user runs it: everything starts, the CLI looks inside, SIGTERM stops all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stella_contracts import AgentText, UserText
from stella_services.runtime.bus import Bus
from stella_services.runtime.nats_server import free_port
from stella_services.runtime.settings import ServiceSettings
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply
from tests.support.up import STELLA, fresh_shell_env, start_up

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow  # starts stt and tts, which load the speech models
async def test_stella_up_query_events_and_clean_stop(tmp_path: Path, uid: str) -> None:
    nats_port, grpc_port = free_port(), free_port()
    llm = ScriptedOpenAI(
        [
            Rule(when_tool_result_for="create_task", text="Done: {tool_result}"),
            Rule(
                when_user_contains="task",
                tool_calls=(
                    ToolCallReply(
                        name="create_task", arguments={"title": "Call mom", "description": "Sunday"}
                    ),
                ),
            ),
        ]
    )
    llm.start()
    env = {
        **os.environ,
        **llm.env(),
        "NATS_URL": f"nats://127.0.0.1:{nats_port}",  # nothing answers: up starts nats-server
        "STELLA_DATA_DIR": str(tmp_path / "stella"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{grpc_port}",
        "CLICKHOUSE_URL": "",
        "COLUMNS": "200",
    }
    up = start_up(env, tmp_path, timeout=120)
    try:
        banner = up.banner
        assert "STELLA is up" in banner and f"nats://127.0.0.1:{nats_port}" in banner
        pids = [int(p) for p in re.findall(r"pid (\d+)", banner)]
        # nats-server, recorder, stt, tts, tool-executor, agent-runner (the example agent)
        # and the gateway
        assert len(pids) == 7 and all(alive(p) for p in pids)
        url, key = up.playground()
        assert f"API key        {key}" in banner and "stella call" in banner
        call = subprocess.run(
            [*STELLA, "call", str(ROOT / "examples" / "audio" / "create-task.wav")],
            env={**env, "STELLA_GATEWAY_URL": url, "STELLA_API_KEY": key},
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
        )
        assert call.returncode == 0, call.stdout + call.stderr
        assert "milk" in call.stdout.lower() and "agent Done:" in call.stdout, call.stdout
        assert (tmp_path / "agent-reply.wav").stat().st_size > 32_000

        sid = f"up-{uid}"
        tail = subprocess.Popen(
            [*STELLA, "events", "--session", sid, "-n", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tail.stderr is not None
        assert "listening on" in tail.stderr.readline()  # subscribed: now publish
        bus = await Bus.connect(ServiceSettings(nats_url=env["NATS_URL"]), "cli-test")
        await bus.emit(sid, UserText(text="what is on my list"))
        await bus.emit(sid, AgentText(text="Buy milk."))
        await bus.close()
        try:
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:  # never leave it running, even when the test fails
                tail.kill()
        assert tail.returncode == 0, err
        assert "user.text" in out and "what is on my list" in out
        assert "agent.text" in out and "Buy milk." in out

        query = f"SELECT count() AS n FROM stella.events WHERE session_id = '{sid}'"
        for _ in range(50):
            q = subprocess.run(
                [*STELLA, "query", query, "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if '{"n": 2}' in q.stdout:
                break
            await asyncio.sleep(0.2)
        assert q.returncode == 0, q.stderr
        assert '{"n": 2}' in q.stdout

        h = subprocess.run(
            [*STELLA, "history", sid], env=env, capture_output=True, text=True, timeout=60
        )
        assert h.returncode == 0 and "what is on my list" in h.stdout and "Buy milk." in h.stdout
        chat = subprocess.run(
            [*STELLA, "chat", "my-custom-agent", "-m", "Please add a task to call mom"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert chat.returncode == 0, chat.stderr
        assert "agent: Hello! How can I help you today?" in chat.stdout
        assert "create_task(" in chat.stdout and "Call mom" in chat.stdout
        # task 2: the voice call above made task 1
        assert 'agent: Done: {"task_id": 2, "status": "created"' in chat.stdout
        chat_sid = re.search(r"stella history (\S+)", chat.stderr)
        assert chat_sid is not None
        h = subprocess.run(
            [*STELLA, "history", chat_sid.group(1), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert '"content": "Please add a task to call mom"' in h.stdout
        refused = subprocess.run(
            [*STELLA, "query", "DROP TABLE stella.events"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "only read queries" in refused.stderr
    finally:
        code = up.stop()
        llm.stop()
    assert code == 0
    for pid in pids:
        for _ in range(100):
            if not alive(pid):
                break
            time.sleep(0.1)
        assert not alive(pid), f"pid {pid} still running after stella up stopped"


def run_printed(command: str, exports: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """One printed command in a fresh bash that has run the printed export line before it."""
    proc = subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-c", f"{exports}\n{command}"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,  # `stella chat` without -m reads until end of input
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow  # starts stt and tts, which load the speech models
def test_the_commands_up_prints_run_as_printed_in_a_fresh_shell(tmp_path: Path) -> None:
    """Every command `make up` prints, typed into a new terminal in another folder: PATH is
    /usr/bin:/bin (no uv, no venv), nothing exported but what the printed lines export.
    `stella call` needs the speech stack and runs in test_main_job_offline.py."""
    llm = ScriptedOpenAI([Rule(text="Noted.")])
    llm.start()
    env = {
        **os.environ,
        **llm.env(),
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "STELLA_DATA_DIR": str(tmp_path / "stella"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "CLICKHOUSE_URL": "",
        "COLUMNS": "200",
    }
    env.pop("STELLA_SECRET", None)  # the secret is the file `stella up` makes
    shell = fresh_shell_env(tmp_path / "home")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    up = start_up(env, tmp_path, timeout=120)
    try:
        commands = up.printed_commands()
        exports = commands[0]
        assert exports.startswith("export NATS_URL="), commands
        assert run_printed(exports, "", shell, elsewhere)[0] == 0
        rest = [c for c in commands[1:] if not re.search(r"stella call\b", c)]
        assert len(rest) == len(commands) - 2, commands  # call was printed, and left out
        assert {c.split()[1] for c in rest} == {"chat", "events", "query"}, rest
        for command in rest:
            if " events" in command:
                continue
            code, out = run_printed(command, exports, shell, elsewhere)
            assert code == 0, (command, out)
            if " query " in command:
                assert "type" in out, out
        # `stella events` tails until Ctrl-C: wait until it listens, then press it
        tail = subprocess.Popen(
            [
                "/bin/bash",
                "--noprofile",
                "--norc",
                "-c",
                f"{exports}\n{up.printed_command('events')}",
            ],
            env=shell,
            cwd=elsewhere,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so Ctrl-C reaches bash and stella
        )
        try:
            assert tail.stderr is not None
            assert "listening on" in tail.stderr.readline()
            os.killpg(tail.pid, signal.SIGINT)
            assert tail.wait(30) == 0
        finally:
            if tail.poll() is None:
                os.killpg(tail.pid, signal.SIGKILL)
                tail.wait()
    finally:
        code = up.stop()
        llm.stop()
    assert code == 0
