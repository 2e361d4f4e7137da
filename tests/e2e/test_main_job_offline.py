"""The main job as a new user runs it, offline: `stella up` with no OpenAI key starts the local
llm and points the guide's agent at it; `stella call` with the bundled WAV gets a spoken,
relevant answer; `stella query` shows the conversation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import wave
from pathlib import Path

import pytest

from stella_services.runtime.nats_server import free_port
from tests.support.speech import words
from tests.support.up import STELLA, fresh_shell_env, start_up
from tests.support.voice import transcribe

pytestmark = pytest.mark.slow


def test_up_with_the_local_llm_answers_a_spoken_request(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "STELLA_DATA_DIR": str(tmp_path / "stella"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "STELLA_LLM_PORT": str(free_port()),
        "CLICKHOUSE_URL": "",
        "COLUMNS": "200",
    }
    up = start_up(env, tmp_path)
    try:
        banner = up.banner
        assert f"local LLM      http://127.0.0.1:{env['STELLA_LLM_PORT']}/v1" in banner, banner
        assert "llm ready" in banner
        up.playground()
        # the `stella call` line exactly as printed, typed into a new shell in another folder
        printed = up.printed_command("call")
        call = subprocess.run(
            ["/bin/bash", "--noprofile", "--norc", "-c", f"{printed} --answer-timeout 240"],
            env=fresh_shell_env(tmp_path / "home"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=420,
            cwd=tmp_path,
        )
        print(call.stdout, call.stderr)
        assert call.returncode == 0, call.stdout + call.stderr
        with wave.open(str(tmp_path / "agent-reply.wav"), "rb") as w:
            pcm = w.readframes(w.getnframes())
        heard = words(transcribe(pcm))
        # the greeting, then an answer about the task it was asked to create
        assert {"help", "today"} <= set(heard), heard
        answer = heard[heard.index("today") + 1 :]
        assert {"milk", "task", "created", "added"} & set(answer), heard
        sid = re.search(r"session (\S+)", call.stderr)
        assert sid is not None
        sql = (
            "SELECT type, role, content FROM stella.events "
            f"WHERE session_id = '{sid.group(1)}' AND is_chat = 1 ORDER BY ts"
        )
        for _ in range(50):
            query = subprocess.run(
                [*STELLA, "query", sql, "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            rows = [json.loads(r) for r in query.stdout.splitlines() if r.startswith("{")]
            if len(rows) >= 3:
                break
            time.sleep(0.2)
        roles = [r["role"] for r in rows]
        assert "user" in roles and roles.count("assistant") >= 2, rows
        assert any("milk" in r["content"].lower() for r in rows if r["role"] == "user"), rows
    finally:
        code = up.stop()
    assert code == 0
