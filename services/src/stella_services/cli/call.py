"""``stella call FILE.wav``: a voice conversation with an agent through the gateway's
WebSocket — the file is spoken at real time, the agent's voice is saved, and the transcript
and per-turn latency are printed."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from stella_contracts.audio import FRAME_BYTES, FRAME_MS, SAMPLE_RATE

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
TRAILING_SILENCE_MS = 1200  # lets voice activity detection hear the end of the question
GREETING_TURN = "connect"  # the turn_id of on_connect's turn (stella_sdk.session.CONNECT_TURN)


class CallFailed(RuntimeError):
    pass


def read_wav(path: Path) -> bytes:
    """Any PCM WAV as 16 kHz mono s16le (channels averaged, rate converted)."""
    import numpy as np  # imported here: `stella` must start in images without numpy

    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise CallFailed(f"{path} is not a PCM WAV file: {exc}") from None
    if width != 2:
        raise CallFailed(f"{path}: 16-bit samples expected, found {8 * width}-bit")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, SAMPLE_RATE)
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)


@dataclass
class CallLog:
    """What came back: the agent's frames, the conversation, and each turn's latency."""

    agent_audio: bytearray = field(default_factory=bytearray)
    lines: list[tuple[str, str]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    turns_done: int = 0
    last_audio: float = 0.0
    ended: str = ""

    def event(self, envelope: dict[str, Any]) -> None:
        kind, p = envelope.get("type"), envelope.get("payload") or {}
        if kind == "stt.transcript" and p.get("is_final") and p.get("text"):
            self.say("user", p["text"])
        elif kind == "agent.text" and p.get("is_final", True):
            self.say("agent", p["text"])
        elif kind == "metrics.turn":
            self.turns.append(p.get("deltas_ms") or {})
        elif kind == "agent.turn_done" and p.get("turn_id") != GREETING_TURN:
            self.turns_done += 1  # a user turn answered; the greeting may end after the question
        elif kind == "lifecycle.ended":
            self.ended = p.get("reason", "ended")
        elif kind == "error":
            err.print(f"[red]gateway: {envelope.get('message')}[/]")

    def say(self, who: str, text: str) -> None:
        self.lines.append((who, text))
        style = "cyan" if who == "user" else "green"
        console.print(f"[{style}]{who:>5}[/] {text}")


async def _receive(ws: Any, log: CallLog) -> None:
    async for message in ws:
        if isinstance(message, bytes):
            log.agent_audio += message
            log.last_audio = time.monotonic()
        else:
            log.event(json.loads(message))


async def _quiet(log: CallLog, for_s: float, timeout: float) -> None:
    """Until the agent has said nothing for ``for_s`` (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not log.ended:
        if log.last_audio and time.monotonic() - log.last_audio > for_s:
            return
        await asyncio.sleep(0.05)


async def _stream(ws: Any, pcm: bytes) -> None:
    """Real time, 20 ms at a time, as a microphone would."""
    start = time.monotonic()
    for n, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
        await ws.send(pcm[offset : offset + FRAME_BYTES])
        delay = start + (n + 1) * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def run_call(
    url: str, api_key: str, agent: str, pcm: bytes, wait_greeting: float, answer_timeout: float
) -> CallLog:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        response = await http.post("/v1/sessions", json={"agent": agent, "audio": True})
        if response.status_code != 201:
            raise CallFailed(f"creating the session: {response.status_code} {response.text}")
        created = response.json()
        sid = created["session_id"]
        err.print(f"[dim]session {sid}[/]")
        log = CallLog()
        ws_url = f"{created['connect']['websocket']}?token={created['connect']['token']}"
        async with connect(ws_url, max_size=1 << 20) as ws:
            receiving = asyncio.create_task(_receive(ws, log))
            await _quiet(log, 0.8, wait_greeting)  # the greeting, if the agent has one
            await _stream(ws, pcm + b"\x00" * (SAMPLE_RATE * 2 * TRAILING_SILENCE_MS // 1000))
            deadline = time.monotonic() + answer_timeout
            while not log.turns_done and time.monotonic() < deadline:
                await _stream(ws, b"\x00" * FRAME_BYTES * 5)  # silence, as a live mic sends
            answered = log.turns_done > 0
            log.last_audio = log.last_audio or time.monotonic()
            if answered:
                await _quiet(log, 1.0, answer_timeout)
            await http.delete(f"/v1/sessions/{sid}")
            await asyncio.wait_for(asyncio.shield(receiving), 5)
        if not answered:
            raise CallFailed(
                f"the agent did not answer within {answer_timeout:g} s (--answer-timeout); "
                f"see `stella history {sid} --debug`"
            )
        return log


def _latency_table(turns: list[dict[str, Any]]) -> Table:
    columns = ("stt_final_ms", "agent_text_ms", "synthesis_ms", "audio_out_ms", "voice_to_voice_ms")
    table = Table("turn", *(c.removesuffix("_ms").replace("_", " ") + " ms" for c in columns))
    for n, deltas in enumerate(turns, 1):
        table.add_row(
            str(n), *("-" if deltas.get(c) is None else f"{deltas[c]:.0f}" for c in columns)
        )
    return table


def call(
    wav: Path = typer.Argument(..., exists=True, dir_okay=False, help="what the user says"),
    agent: str = typer.Option("my-custom-agent", "--agent", "-a", help="the agent's name"),
    url: str = typer.Option(
        "http://127.0.0.1:8080", "--url", envvar="STELLA_GATEWAY_URL", help="the gateway"
    ),
    api_key: str = typer.Option(
        ..., "--key", envvar="STELLA_API_KEY", help="an API key (`make up` prints one)"
    ),
    out: Path = typer.Option(Path("agent-reply.wav"), "--out", "-o", help="the agent's voice"),
    wait_greeting: float = typer.Option(8.0, help="seconds to let the agent greet first"),
    answer_timeout: float = typer.Option(60.0, help="seconds to wait for the answer"),
) -> None:
    """Speak WAV to an agent through the gateway's WebSocket; save and print what it says."""
    try:
        pcm = read_wav(wav)
        log = asyncio.run(run_call(url, api_key, agent, pcm, wait_greeting, answer_timeout))
    except CallFailed as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except (httpx.HTTPError, OSError) as exc:
        err.print(f"[red]cannot reach the gateway at {url}: {exc}[/]")
        raise typer.Exit(1) from None
    write_wav(out, bytes(log.agent_audio))
    seconds = len(log.agent_audio) / (2 * SAMPLE_RATE)
    console.print(f"saved {seconds:.1f} s of the agent's voice to {out}")
    if log.turns:
        console.print(_latency_table(log.turns))
    if not any(who == "agent" for who, _ in log.lines):
        err.print("[yellow]the agent said nothing[/]")
        raise typer.Exit(1)
