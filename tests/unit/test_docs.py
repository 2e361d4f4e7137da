"""The README and docs/: links that resolve, a front page that stays short, and the one
benchmark table that is exactly what bench/results/latest.json renders to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import table

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and [text]: target; code spans and fenced blocks are not links
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def relative_links(text: str) -> list[str]:
    """Link targets that name a file of the repository (no scheme, not site-absolute)."""
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file_of_the_repository(page: Path) -> None:
    missing = []
    for target in relative_links(page.read_text()):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or ROOT not in path.parents:
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: {missing}"


def test_the_link_finder_finds_links_and_skips_code() -> None:
    text = "[a](docs/x.md) [b](https://e.com) [c](#top) `[d](no.md)`\n```\n[e](no.md)\n```\n"
    assert relative_links(text + "[f]: ../y.md\n") == ["docs/x.md", "../y.md"]


def test_the_readme_is_a_front_page_of_at_most_300_lines() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)
    assert lines[0] == "# STELLA"
    commands = "\n".join(lines[:12])
    assert "make up" in commands and "make test" in commands


def test_the_benchmark_table_is_what_the_committed_results_render_to() -> None:
    results = table.load(table.RESULTS)
    assert results["figures"], "bench/results/latest.json has no figures"
    assert all(f.get("source") for f in results["figures"]), "every figure says where it is from"
    doc = table.DOC.read_text()
    assert table.replace_table(doc, table.render(results)) == doc, (
        "docs/benchmarks.md's table is not bench/results/latest.json's: "
        "run .venv/bin/python -m bench.table"
    )


def test_a_run_replaces_only_the_figures_of_the_suites_it_ran() -> None:
    from bench.figures import Figure

    previous = {
        "about": "kept",
        "figures": [
            {"suite": "recorder", "name": "old", "value": 1.0, "unit": "", "method": "m"},
            {"suite": "speech", "name": "kept", "value": 2.0, "unit": "", "method": "m"},
        ],
    }
    merged = table.merge(previous, [("recorder", Figure("new", 3.0, "ms", "how"))], "here")
    assert merged["about"] == "kept"
    assert [(f["suite"], f["name"], f.get("source")) for f in merged["figures"]] == [
        ("recorder", "new", "here"),
        ("speech", "kept", None),
    ]
    assert table.number(26900.0) == "26,900" and table.number(0.07) == "0.07"
    assert table.number(11.24) == "11.2" and table.number(271.0) == "271"


def settings_variables() -> dict[str, set[str]]:
    """Every pydantic-settings class of the code: its environment variables, by class."""
    from pydantic import AliasChoices
    from pydantic_settings import BaseSettings

    from stella_sdk.settings import AgentSettings
    from stella_services.agent_runner.service import AgentRunnerSettings
    from stella_services.cli.settings import CliSettings
    from stella_services.gateway.settings import GatewaySettings
    from stella_services.llm.settings import LlmSettings
    from stella_services.recorder.settings import RecorderSettings
    from stella_services.runtime.settings import ServiceSettings
    from stella_services.stt.settings import SttSettings
    from stella_services.tool_executor.service import ToolExecutorSettings
    from stella_services.tts.settings import TtsSettings

    classes: list[type[BaseSettings]] = [
        ServiceSettings,
        AgentSettings,
        AgentRunnerSettings,
        CliSettings,
        GatewaySettings,
        LlmSettings,
        RecorderSettings,
        SttSettings,
        ToolExecutorSettings,
        TtsSettings,
    ]
    found: dict[str, set[str]] = {}
    for cls in classes:
        prefix = cls.model_config.get("env_prefix", "")
        names = set()
        for field, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names.add(str(alias.choices[0]))
            elif isinstance(alias, str):
                names.add(alias)
            else:
                names.add(f"{prefix}{field}".upper())
        found[cls.__name__] = names
    return found


def test_every_setting_of_the_code_is_in_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", page))
    missing = {
        cls: sorted(names - documented)
        for cls, names in settings_variables().items()
        if names - documented
    }
    assert not missing, missing
