"""The manifests `stella deploy render` makes: valid for the Kubernetes API (schemas bundled
in kubernetes-validate, strict: unknown fields fail), resources as configured, secrets only
by reference, graceful termination and readiness everywhere."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from stella_services.deploy.config import AgentsConfig, parse_config
from stella_services.deploy.manifests import (
    LOCAL_LLM_KEY,
    PLATFORM_CONFIG,
    READY_FILE,
    SECRET_KEYS,
    render,
    render_files,
)

ROOT = Path(__file__).resolve().parents[2]
GUIDE = parse_config((ROOT / "examples" / "my-agent" / "agents-config.yaml").read_text())
FULL = parse_config((ROOT / "deploy" / "kubernetes" / "agents-config.example.yaml").read_text())
# the oldest Kubernetes the manifests are meant for (gRPC probes are GA from 1.27), and the
# newest whose schemas kubernetes-validate ships
K8S_VERSIONS = ["1.29", kubernetes_validate.utils.latest_version()]

Object = dict[str, Any]


def by_name(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(deployment: Object) -> Object:
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: Object) -> dict[str, Object]:
    return {e["name"]: e for e in c.get("env", [])}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("config", [GUIDE, FULL], ids=["guide", "full"])
def test_every_object_is_valid_for_the_kubernetes_api(config: AgentsConfig, version: str) -> None:
    for obj in render(config):
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_does_fail_on_a_broken_object() -> None:
    deployment = copy.deepcopy(by_name(render(GUIDE), "Deployment")["stella-stt"])
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    deployment["spec"]["replicas"] = 2
    deployment["spec"]["template"]["spec"]["terminationGrace"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_the_guides_agent_gets_a_runner_a_tool_executor_and_autoscalers() -> None:
    files = render_files(GUIDE)
    assert list(files) == ["platform.yaml", "agent-my-custom-agent.yaml"]
    agent = files["agent-my-custom-agent.yaml"]
    assert [(o["kind"], o["metadata"]["name"]) for o in agent] == [
        ("Deployment", "my-custom-agent-runner"),
        ("HorizontalPodAutoscaler", "my-custom-agent-runner"),
        ("Deployment", "my-custom-agent-tools"),
        ("HorizontalPodAutoscaler", "my-custom-agent-tools"),
    ]
    deployments = by_name(agent, "Deployment")
    runner = container(deployments["my-custom-agent-runner"])
    tools = container(deployments["my-custom-agent-tools"])
    expected = {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1000m", "memory": "2Gi"},
    }
    assert runner["resources"] == expected and tools["resources"] == expected
    image = "registry.example.com/my-custom-agent:latest"
    assert runner["image"] == tools["image"] == image
    assert "command" not in runner  # the image's own: the guide's `python -m src.agent`
    assert tools["command"] == ["stella", "serve", "tool-executor"]
    assert env_of(tools)["STELLA_TOOL_MODULES"]["value"] == "src.tools"
    assert env_of(tools)["STELLA_AGENT_PATH"]["value"] == "/app"
    assert env_of(runner)["STELLA_AGENT_NAME"]["value"] == "my-custom-agent"
    # the guide's Settings require these to exist, empty or not
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "ROOM_NAME"):
        assert name in env_of(runner) or name in platform_config(GUIDE)
    for hpa in by_name(agent, "HorizontalPodAutoscaler").values():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": hpa["metadata"]["name"],
        }
        assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 5)
        target = spec["metrics"][0]["resource"]
        assert target["name"] == "cpu" and target["target"]["averageUtilization"] == 70
    # an autoscaler owns the count: a re-apply must not reset it
    assert all("replicas" not in d["spec"] for d in deployments.values())


def platform_config(config: AgentsConfig) -> dict[str, str]:
    [cm] = [o for o in render(config) if o["kind"] == "ConfigMap"]
    assert cm["metadata"]["name"] == PLATFORM_CONFIG
    data: dict[str, str] = cm["data"]
    return data


def test_the_platform_services_and_how_they_are_reached() -> None:
    objects = render(GUIDE)
    assert [o["kind"] for o in objects[:2]] == ["Namespace", "ConfigMap"]
    deployments = by_name(objects, "Deployment")
    platform = {n for n in deployments if n.startswith("stella-")}
    assert platform == {"stella-gateway", "stella-stt", "stella-tts", "stella-recorder"}
    assert set(by_name(objects, "Service")) == {"stella-gateway", "stella-recorder"}
    for service in ("gateway", "stt", "tts", "recorder"):
        c = container(deployments[f"stella-{service}"])
        assert c["image"] == f"stella/{service}:latest"
        assert c["command"] == ["stella", "serve", service]
    assert platform_config(GUIDE)["NATS_URL"] == "nats://nats:4222"
    assert platform_config(GUIDE)["STELLA_STREAM_REPLICAS"] == "1"
    assert platform_config(GUIDE)["STELLA_HISTORY_ADDR"] == "stella-recorder:50051"
    recorder = container(deployments["stella-recorder"])
    assert recorder["readinessProbe"]["grpc"] == {"port": 50051}
    assert env_of(recorder)["STELLA_HISTORY_ADDR"]["value"] == "0.0.0.0:50051"  # listens
    gateway = by_name(objects, "Service")["stella-gateway"]
    assert gateway["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]


def test_secrets_are_only_ever_referenced() -> None:
    for config in (GUIDE, FULL):
        for obj in render(config):
            assert obj["kind"] != "Secret"
            if obj["kind"] != "Deployment":
                continue
            for item in container(obj).get("env", []):
                if item["name"] in SECRET_KEYS and "value" in item:
                    # empty LiveKit credentials when there is no LiveKit; the local llm's
                    # placeholder key: neither is a secret
                    assert item["value"] in ("", LOCAL_LLM_KEY), item
    recorder = container(by_name(render(GUIDE), "Deployment")["stella-recorder"])
    assert env_of(recorder)["CLICKHOUSE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "stella-secrets", "key": "clickhouse-url"}
    }
    runner = container(by_name(render(FULL), "Deployment")["my-custom-agent-runner"])
    assert env_of(runner)["SEARCH_API_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "my-agent-secrets", "key": "search-token"}
    }


def test_every_pod_terminates_gracefully_and_says_when_it_is_ready() -> None:
    for obj in render(FULL):
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        c = container(obj)
        assert pod["terminationGracePeriodSeconds"] >= 30, obj["metadata"]["name"]
        assert "readinessProbe" in c, obj["metadata"]["name"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        strategy = obj["spec"]["strategy"]["rollingUpdate"]
        assert strategy == {"maxSurge": 1, "maxUnavailable": 0}
    deployments = by_name(render(FULL), "Deployment")
    runner = deployments["my-custom-agent-runner"]
    # drainTimeoutSeconds: 45 in the example, and time to close after it
    assert runner["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    assert env_of(container(runner))["STELLA_DRAIN_TIMEOUT_S"]["value"] == "45"
    assert container(runner)["readinessProbe"]["exec"]["command"] == ["test", "-f", READY_FILE]
    assert platform_config(FULL)["STELLA_READY_FILE"] == READY_FILE


def test_the_llm_option_runs_it_and_points_the_agents_at_it() -> None:
    assert "stella-llm" not in by_name(render(GUIDE), "Deployment")
    objects = render(FULL)
    assert "stella-llm" in by_name(objects, "Deployment")
    assert by_name(objects, "Service")["stella-llm"]["spec"]["ports"][0]["port"] == 8090
    runner = env_of(container(by_name(objects, "Deployment")["my-custom-agent-runner"]))
    assert runner["OPENAI_BASE_URL"]["value"] == "http://stella-llm:8090/v1"
    assert runner["OPENAI_API_KEY"]["value"] == LOCAL_LLM_KEY
    guide_runner = env_of(container(by_name(render(GUIDE), "Deployment")["my-custom-agent-runner"]))
    assert "OPENAI_BASE_URL" not in guide_runner
    assert guide_runner["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "openai-api-key"


def test_livekit_credentials_come_from_the_secret_when_livekit_is_used() -> None:
    assert platform_config(FULL)["LIVEKIT_URL"] == "wss://livekit.example.com"
    runner = env_of(container(by_name(render(FULL), "Deployment")["my-custom-agent-runner"]))
    assert runner["LIVEKIT_API_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "livekit-api-secret"


def test_the_agents_own_settings_win_and_overrides_apply() -> None:
    objects = render(FULL)
    deployments = by_name(objects, "Deployment")
    runner = env_of(container(deployments["my-custom-agent-runner"]))
    assert runner["OPENAI_MODEL"]["value"] == "gpt-4o-mini"
    assert runner["STELLA_MAX_SESSIONS"]["value"] == "40"
    names = [e["name"] for e in container(deployments["my-custom-agent-runner"])["env"]]
    assert len(names) == len(set(names))
    tools = container(deployments["my-custom-agent-tools"])
    assert tools["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert deployments["stella-stt"]["spec"]["replicas"] == 3
    assert env_of(container(deployments["stella-stt"]))["STELLA_STT_PROVIDER"]["value"] == "sherpa"
    assert container(deployments["stella-tts"])["image"] == "registry.example.com/stella/tts:0.1.0"
    assert all(o["metadata"].get("namespace", "stella") == "stella" for o in objects)


def test_an_agent_without_a_tool_executor() -> None:
    text = (ROOT / "examples" / "my-agent" / "agents-config.yaml").read_text()
    config = parse_config(text + "    toolExecutor: {enabled: false}\n")
    names = [o["metadata"]["name"] for o in render_files(config)["agent-my-custom-agent.yaml"]]
    assert names == ["my-custom-agent-runner", "my-custom-agent-runner"]


def test_a_nats_cluster_is_reached_by_its_nodes_and_keeps_three_copies() -> None:
    data = GUIDE.model_dump(by_alias=True)
    data["platform"] = {
        **data.get("platform", {}),
        "natsUrl": "nats://nats-0.nats:4222,nats://nats-1.nats:4222,nats://nats-2.nats:4222",
        "streamReplicas": 3,
    }
    cluster = AgentsConfig.model_validate(data)
    assert platform_config(cluster)["NATS_URL"].count("nats://") == 3
    assert platform_config(cluster)["STELLA_STREAM_REPLICAS"] == "3"
    data["platform"]["natsUrl"] = "nats://a:4222, nats://b:4222"  # a space: not a URL list
    with pytest.raises(ValidationError, match="natsUrl"):
        AgentsConfig.model_validate(data)
