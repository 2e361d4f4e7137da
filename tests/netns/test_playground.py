"""The playground in headless Chromium: a fake microphone speaks a question over WebRTC; the
page shows the user's words, the agent's reply text, and plays the reply (energy > 0); the
session is then in ClickHouse."""

from __future__ import annotations

import os
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.support.gateway import QUESTION, TEST_API_KEY, VoicePlatform, voice_platform
from tests.support.history import HistoryClient
from tests.support.speech import silence, speech_pcm, words

DEADLINE_MS = 180_000  # generous: a loaded 2-core machine synthesizes slowly
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def write_wav(path: Path, pcm: bytes, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


@pytest.fixture(scope="module")
def platform(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoicePlatform]:
    with voice_platform(nats_url, tmp_path_factory.mktemp("playground")) as running:
        yield running


def chromium_args(wav: Path) -> list[str]:
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]


def events(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.evaluate("window.stella.events")
    return result


def wait_event(page: Page, match: Any, timeout: float = DEADLINE_MS / 1000) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events(page):
            if match(event):
                return event
        page.wait_for_timeout(200)
    raise AssertionError(f"no matching event; page saw: {[e['type'] for e in events(page)]}")


def test_playground_voice_conversation_in_chromium(platform: VoicePlatform) -> None:
    tmp = platform.tmp
    # the fake microphone loops this file: the question, then a long pause for the answer
    wav = write_wav(tmp / "question.wav", silence(800) + speech_pcm(QUESTION) + silence(20_000))
    profile = tempfile.mkdtemp(dir=tmp, prefix="chromium-")
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=chromium_args(wav), headless=True
        )
        try:
            page = browser.new_page()
            page.goto(f"{platform.url}/?agent=my-custom-agent#key={TEST_API_KEY}")
            assert page.input_value("#api-key") == TEST_API_KEY
            assert "key=" not in page.url  # the key left the address bar
            page.click("#start")
            page.wait_for_function("window.stella.state.startsWith('live')", timeout=DEADLINE_MS)
            answer: str = page.evaluate("window.stella.remoteSdp")
            candidates = [ln for ln in answer.splitlines() if ln.startswith("a=candidate:")]
            assert candidates and all(" 127.0.0.1 " in ln for ln in candidates), candidates

            heard = wait_event(
                page,
                lambda e: (
                    e["type"] == "stt.transcript"
                    and e["payload"]["is_final"]
                    and "france" in words(e["payload"]["text"])
                ),
            )
            reply = wait_event(
                page, lambda e: e["type"] == "agent.text" and "Paris" in e["payload"]["text"]
            )
            page.wait_for_selector("#messages li.assistant:has-text('Paris')")
            page.wait_for_selector(f"#messages li.user:has-text('{heard['payload']['text'][:12]}')")
            # the reply is heard: wait for sound after it (synthesis may take long under load)
            page.wait_for_function(
                "t => window.stella.levels.some(([at, rms]) => at >= t && rms > 0.01)",
                arg=reply["t"],
                timeout=DEADLINE_MS,
            )
            metrics = wait_event(page, lambda e: e["type"] == "metrics.turn")
            assert metrics["payload"]["deltas_ms"]
            assert page.locator("#turns tr").count() >= 1  # the latency breakdown

            session_id = page.text_content("#session-id").split()[-1]  # type: ignore[union-attr]
            page.click("#end")
            wait_event(page, lambda e: e["type"] == "lifecycle.ended")
        finally:
            browser.close()

    history = HistoryClient(platform.env["STELLA_HISTORY_ADDR"])
    history.wait_for(
        f"SELECT count() FROM stella.events WHERE session_id = '{session_id}' "
        "AND type = 'lifecycle.ended'",
        1,
    )
    said = [(m.role, m.content) for m in history.history(session_id)]
    assert any(r == "user" and "france" in words(c) for r, c in said), said
    assert any(r == "assistant" and "Paris" in c for r, c in said), said
    assert os.path.exists(CHROMIUM)
