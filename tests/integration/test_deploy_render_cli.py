"""`stella deploy render` as a user runs it: the guide's file to stdout or a folder, and an
invalid file refused with its line and field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GUIDE_CONFIG = ROOT / "examples" / "my-agent" / "agents-config.yaml"


def stella(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stella_services", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_render_prints_every_manifest_of_the_guides_file() -> None:
    done = stella("deploy", "render", str(GUIDE_CONFIG))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Rendered by `stella deploy render` from agents-config.yaml")
    objects = list(yaml.safe_load_all(done.stdout))
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Deployment") == 6  # gateway, stt, tts, recorder, runner, tools
    assert kinds.count("HorizontalPodAutoscaler") == 2
    names = {o["metadata"]["name"] for o in objects}
    assert {"my-custom-agent-runner", "my-custom-agent-tools", "stella-recorder"} <= names


def test_render_into_a_folder_and_forget_a_removed_agent(tmp_path: Path) -> None:
    config = tmp_path / "agents-config.yaml"
    second = GUIDE_CONFIG.read_text().removeprefix("agents:\n").replace("my-custom", "second")
    config.write_text(GUIDE_CONFIG.read_text() + second)
    out = tmp_path / "manifests"
    out.mkdir()
    (out / "agent-mine.yaml").write_text("# written by hand\n")
    assert stella("deploy", "render", str(config), "--out", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "agent-mine.yaml",
        "agent-my-custom-agent.yaml",
        "agent-second-agent.yaml",
        "platform.yaml",
    ]
    runner = next(yaml.safe_load_all((out / "agent-second-agent.yaml").read_text()))
    assert runner["metadata"]["name"] == "second-agent-runner"
    shutil.copy(GUIDE_CONFIG, config)  # the second agent is gone from the config
    done = stella("deploy", "render", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stderr
    # the file written by hand stays: only files this command wrote are removed
    assert sorted(p.name for p in out.iterdir()) == [
        "agent-mine.yaml",
        "agent-my-custom-agent.yaml",
        "platform.yaml",
    ]


def test_an_invalid_file_is_refused_with_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GUIDE_CONFIG.read_text().replace('"512Mi"', '"512m"'))
    done = stella("deploy", "render", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "bad.yaml:7: agents[0].resources.requests.memory: '512m' means 0.512 bytes" in (
        done.stderr
    )
    assert done.stdout == "" and not (tmp_path / "out").exists()
