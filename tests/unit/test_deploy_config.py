"""agents-config.yaml: the guide's file is read as written; every mistake is reported with
its line and field."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from stella_services.cli.deploy import config_schema
from stella_services.deploy.config import AgentsConfig, parse_config
from stella_services.deploy.config_file import ConfigError
from stella_services.deploy.quantities import QuantityError, cpu, memory, parse_quantity

ROOT = Path(__file__).resolve().parents[2]
GUIDE_CONFIG = ROOT / "examples" / "my-agent" / "agents-config.yaml"
FULL_EXAMPLE = ROOT / "deploy" / "kubernetes" / "agents-config.example.yaml"

AGENT = """\
agents:
  - name: my-custom-agent
    image: registry.example.com/my-custom-agent:latest
    resources:
      requests:
        cpu: "250m"
        memory: "512Mi"
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "agents-config.yaml")
    return str(caught.value).splitlines()


def test_the_guides_file_is_read_as_written() -> None:
    config = parse_config(GUIDE_CONFIG.read_text())
    [agent] = config.agents
    assert agent.name == "my-custom-agent"
    assert agent.image == "registry.example.com/my-custom-agent:latest"
    assert (agent.resources.requests.cpu, agent.resources.requests.memory) == ("250m", "512Mi")
    assert agent.resources.limits is not None
    assert (agent.resources.limits.cpu, agent.resources.limits.memory) == ("1000m", "2Gi")
    # everything else has its default
    assert agent.autoscaling.min_replicas == 1 and agent.autoscaling.max_replicas == 5
    assert agent.tool_executor.enabled and agent.tool_executor.modules == ["src.tools"]
    assert config.platform.namespace == "stella" and not config.platform.llm


def test_the_full_example_sets_every_optional_field() -> None:
    config = parse_config(FULL_EXAMPLE.read_text())
    [agent] = config.agents
    assert agent.autoscaling.target_cpu_utilization == 60
    assert agent.secret_env["SEARCH_API_TOKEN"].key == "search-token"
    assert agent.tool_executor.resources is not None
    assert agent.tool_executor.resources.limits is not None
    assert agent.tool_executor.resources.limits.memory == "512Mi"
    assert config.platform.llm and config.platform.livekit_url == "wss://livekit.example.com"
    assert config.platform.services["stt"].replicas == 3


def test_a_missing_field_names_the_entry_it_is_missing_from() -> None:
    text = "agents:\n  - name: a\n    resources:\n      requests: {cpu: 1, memory: 1Gi}\n"
    assert errors_of(text) == ["agents-config.yaml:2: agents[0].image: required, but missing"]


def test_a_wrong_type_names_its_line() -> None:
    text = AGENT + "    maxSessions: lots\n"
    [error] = errors_of(text)
    assert error.startswith("agents-config.yaml:8: agents[0].maxSessions: Input should be a")
    text = "agents:\n  - name: a\n    image: x\n    resources: big\n"
    assert errors_of(text) == [
        "agents-config.yaml:4: agents[0].resources: Input should be a valid dictionary"
    ]


def test_bad_resource_quantities_name_line_and_field() -> None:
    text = AGENT.replace('"250m"', '"250mm"').replace('"512Mi"', '"512m"')
    assert errors_of(text) == [
        "agents-config.yaml:6: agents[0].resources.requests.cpu: '250mm' is not a Kubernetes "
        "quantity (a number with an optional suffix: m, k, M, G, Ki, Mi, Gi, ... or an "
        "exponent like 1e3)",
        "agents-config.yaml:7: agents[0].resources.requests.memory: '512m' means 0.512 bytes; "
        "write 512Mi for mebibytes",
    ]


def test_requests_above_limits_are_refused() -> None:
    text = AGENT + "      limits:\n        cpu: 200m\n        memory: 1Gi\n"
    assert errors_of(text) == [
        "agents-config.yaml:6: agents[0].resources.requests.cpu: 250m is more than its limit 200m"
    ]


def test_duplicate_agent_names_point_at_the_second() -> None:
    second = AGENT.removeprefix("agents:\n").replace("latest", "v2")
    assert errors_of(AGENT + second) == [
        "agents-config.yaml:8: agents[1].name: 'my-custom-agent' is already the name of agents[0]"
    ]


def test_a_yaml_syntax_error_names_its_line() -> None:
    text = AGENT.replace("    image:", "   image:")
    [error] = errors_of(text)
    assert error.startswith("agents-config.yaml:3: YAML syntax error: ")


def test_a_key_written_twice_is_an_error_not_last_one_wins() -> None:
    text = AGENT + "    image: other:latest\n"
    assert errors_of(text) == [
        "agents-config.yaml:8: agents[0].image: written twice (first on line 3)"
    ]


def test_unknown_fields_and_bad_names_are_reported_together() -> None:
    text = "agents:\n  - name: My_Agent\n    image: x\n    resource: {}\n"
    assert errors_of(text) == [
        "agents-config.yaml:2: agents[0].name: 'My_Agent' is not a Kubernetes name: lowercase "
        "letters, digits and '-', starting and ending with a letter or digit",
        "agents-config.yaml:2: agents[0].resources: required, but missing",
        "agents-config.yaml:4: agents[0].resource: unknown field",
    ]


def test_autoscaling_and_environment_mistakes() -> None:
    text = AGENT + (
        "    autoscaling: {minReplicas: 4, maxReplicas: 2}\n"
        "    secretEnv:\n"
        "      bad-name: {secret: s, key: k}\n"
    )
    assert errors_of(text) == [
        "agents-config.yaml:10: agents[0].secretEnv.bad-name: 'bad-name' is not an environment "
        "variable name: letters, digits and '_', not starting with a digit"
    ]
    text = AGENT + "    autoscaling: {minReplicas: 4, maxReplicas: 2}\n"
    assert errors_of(text) == [
        "agents-config.yaml:8: agents[0].autoscaling.minReplicas: 4 is more than maxReplicas 2"
    ]


def test_an_empty_file_and_one_without_agents() -> None:
    assert errors_of("") == ["agents-config.yaml: the file is empty"]
    assert errors_of("agents: []\n") == [
        "agents-config.yaml:1: agents: List should have at least 1 item after validation, not 0"
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("1", Decimal(1)),
        ("0.5", Decimal("0.5")),
        ("2Gi", Decimal(2 * 2**30)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities_are_read_like_kubernetes_does(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1.2.3", "5 Mi", "1mi", "Gi", "1e"])
def test_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_cpu_and_memory_catch_unit_slips() -> None:
    assert cpu("250m") == "250m"
    with pytest.raises(QuantityError, match="cores or millicores"):
        cpu("1Gi")
    with pytest.raises(QuantityError, match="smallest"):
        cpu("0.0001")
    assert memory("1Gi") == "1Gi"
    with pytest.raises(QuantityError, match="under 1Mi"):
        memory("512")


def test_the_committed_json_schema_is_current_and_accepts_both_examples() -> None:
    committed = ROOT / "deploy" / "kubernetes" / "agents-config.schema.json"
    assert committed.read_text() == config_schema(), "run: stella deploy schema > " + str(
        committed.relative_to(ROOT)
    )
    validator = Draft202012Validator(json.loads(committed.read_text()))
    for path in (GUIDE_CONFIG, FULL_EXAMPLE):
        validator.validate(yaml.safe_load(path.read_text()))
    assert AgentsConfig.model_json_schema(by_alias=True)["required"] == ["agents"]


def test_environment_values_written_as_numbers_or_booleans_keep_their_text() -> None:
    text = AGENT + "    env:\n      PORT: 8080\n      DEBUG: true\n      RATIO: 0.5\n"
    [agent] = parse_config(text).agents
    assert agent.env == {"PORT": "8080", "DEBUG": "true", "RATIO": "0.5"}
