"""Kubernetes objects for an :class:`AgentsConfig`: pure functions, data in, dicts out.

The platform: a ConfigMap of shared settings, a Deployment per service (gateway, stt, tts,
recorder, and the llm when asked for) with a Service for those reached over the network.
Each agent: a Deployment of its runner (the image's own command, ``python -m src.agent``)
and one of its tool-executor (the same image, ``stella serve tool-executor``), each with a
HorizontalPodAutoscaler. NATS and ClickHouse run elsewhere and are reached by URL; every
secret is a ``secretKeyRef`` into one Secret the operator creates, never a value here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from stella_services.deploy.config import (
    Agent,
    AgentsConfig,
    Autoscaling,
    Platform,
    PlatformService,
    Resources,
)

Object = dict[str, Any]

PART_OF = "stella"
MANAGED_BY = "stella-deploy"
PLATFORM_CONFIG = "stella-platform"
READY_FILE = "/tmp/stella-ready"  # STELLA_READY_FILE: what the readiness probes test
SERVICE_UID = 10001  # the user of STELLA's own images (deploy/docker)
HISTORY_PORT = 50051
GATEWAY_PORT = 8080
LLM_PORT = 8090
LOCAL_LLM_KEY = "local-llm"  # the openai client insists on a key; the local llm ignores it

# Keys of the Secret (platform.secretName) the operator creates; see the README.
SECRET_KEYS = {
    "STELLA_SECRET": "stella-secret",
    "CLICKHOUSE_URL": "clickhouse-url",
    "OPENAI_API_KEY": "openai-api-key",
    "LIVEKIT_API_KEY": "livekit-api-key",
    "LIVEKIT_API_SECRET": "livekit-api-secret",
}


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources.model_validate(
        {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu_limit, "memory": memory_limit},
        }
    )


@dataclass(frozen=True)
class ServiceShape:
    """How one platform service runs, before the config's overrides."""

    name: PlatformService
    replicas: int
    resources: Resources
    port: int | None = None  # served on the network: a Service is made
    port_name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[tuple[str, bool], ...] = ()  # (variable, optional)
    grace_seconds: int = 30


SHAPES: dict[PlatformService, ServiceShape] = {
    "gateway": ServiceShape(
        "gateway",
        replicas=2,
        resources=_resources("250m", "256Mi", "1", "1Gi"),
        port=GATEWAY_PORT,
        port_name="http",
        env={"STELLA_GATEWAY_HOST": "0.0.0.0", "STELLA_GATEWAY_PORT": str(GATEWAY_PORT)},
        secrets=(("STELLA_SECRET", False), ("LIVEKIT_API_KEY", True), ("LIVEKIT_API_SECRET", True)),
    ),
    "stt": ServiceShape("stt", replicas=2, resources=_resources("1", "1Gi", "2", "2Gi")),
    "tts": ServiceShape("tts", replicas=2, resources=_resources("1", "1Gi", "2", "2Gi")),
    # one consumer of the durable JetStream stream is enough; more share its batches
    "recorder": ServiceShape(
        "recorder",
        replicas=1,
        resources=_resources("250m", "512Mi", "1", "1Gi"),
        port=HISTORY_PORT,
        port_name="grpc",
        env={"STELLA_HISTORY_ADDR": f"0.0.0.0:{HISTORY_PORT}"},  # the address it listens on
        secrets=(("STELLA_SECRET", False), ("CLICKHOUSE_URL", False)),
    ),
    # a long completion may still be streaming when the pod is told to stop
    "llm": ServiceShape(
        "llm",
        replicas=1,
        resources=_resources("2", "4Gi", "4", "8Gi"),
        port=LLM_PORT,
        port_name="http",
        env={"STELLA_LLM_HOST": "0.0.0.0", "STELLA_LLM_PORT": str(LLM_PORT)},
        grace_seconds=60,
    ),
}


def labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def metadata(name: str, namespace: str, labels_: dict[str, str]) -> Object:
    return {"name": name, "namespace": namespace, "labels": labels_}


def env_value(name: str, value: str) -> Object:
    return {"name": name, "value": value}


def env_secret(name: str, secret: str, key: str, optional: bool = False) -> Object:
    ref: Object = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def resources(spec: Resources) -> Object:
    out: Object = {"requests": {"cpu": spec.requests.cpu, "memory": spec.requests.memory}}
    if spec.limits is not None:
        out["limits"] = {"cpu": spec.limits.cpu, "memory": spec.limits.memory}
    return out


def ready_file_probe() -> Object:
    return {
        "exec": {"command": ["test", "-f", READY_FILE]},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }


def readiness_probe(shape: ServiceShape) -> Object:
    """The recorder answers the standard gRPC health check; HTTP services take connections;
    the rest write STELLA_READY_FILE once they serve."""
    if shape.port_name == "grpc":
        return {"grpc": {"port": shape.port}, "periodSeconds": 5, "failureThreshold": 3}
    if shape.port is not None:
        return {"tcpSocket": {"port": shape.port}, "periodSeconds": 5, "failureThreshold": 3}
    return ready_file_probe()


def container_security() -> Object:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def deployment(
    name: str,
    component: str,
    namespace: str,
    container: Object,
    replicas: int | None,
    grace_seconds: int,
    pod_security: Object,
) -> Object:
    """``replicas`` is None when an autoscaler owns the count (a re-apply must not reset it)."""
    spec: Object = {
        "selector": {"matchLabels": selector(name, component)},
        # a replacement is ready before an old pod drains its sessions
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": labels(name, component)},
            "spec": {
                "terminationGracePeriodSeconds": grace_seconds,
                "securityContext": pod_security,
                "containers": [container],
            },
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, namespace, labels(name, component)),
        "spec": spec,
    }


def service(name: str, component: str, namespace: str, port: int, port_name: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace, labels(name, component)),
        "spec": {
            "selector": selector(name, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }


def autoscaler(name: str, component: str, namespace: str, scaling: Autoscaling) -> Object:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace, labels(name, component)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization,
                        },
                    },
                }
            ],
            # scaling in ends sessions after a drain: one pod a minute at most
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            },
        },
    }


def platform_config(platform: Platform) -> Object:
    data = {
        "NATS_URL": platform.nats_url,
        "STELLA_STREAM_REPLICAS": str(platform.stream_replicas),
        "STELLA_HISTORY_ADDR": f"stella-recorder:{HISTORY_PORT}",
        "STELLA_LOG_LEVEL": platform.log_level,
        "STELLA_READY_FILE": READY_FILE,
        "LIVEKIT_URL": platform.livekit_url,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(PLATFORM_CONFIG, platform.namespace, labels("stella", "platform")),
        "data": data,
    }


def platform_service(platform: Platform, shape: ServiceShape) -> list[Object]:
    chosen = platform.services.get(shape.name)
    name = f"stella-{shape.name}"
    env = [env_value(k, v) for k, v in shape.env.items()]
    env += [
        env_secret(var, platform.secret_name, SECRET_KEYS[var], optional)
        for var, optional in shape.secrets
    ]
    if chosen is not None:
        env += [env_value(k, v) for k, v in chosen.env.items()]
    container: Object = {
        "name": shape.name,
        "image": f"{platform.image_registry}/{shape.name}:{platform.image_tag}",
        "command": ["stella", "serve", shape.name],
        "envFrom": [{"configMapRef": {"name": PLATFORM_CONFIG}}],
        "env": env,
        "resources": resources(
            chosen.resources if chosen and chosen.resources else shape.resources
        ),
        "readinessProbe": readiness_probe(shape),
        "securityContext": container_security(),
    }
    if shape.port is not None:
        container["ports"] = [{"name": shape.port_name, "containerPort": shape.port}]
    pod_security = {
        "runAsNonRoot": True,
        "runAsUser": SERVICE_UID,
        "runAsGroup": SERVICE_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    replicas = chosen.replicas if chosen and chosen.replicas else shape.replicas
    objects = [
        deployment(
            name,
            shape.name,
            platform.namespace,
            container,
            replicas,
            shape.grace_seconds,
            pod_security,
        )
    ]
    if shape.port is not None:
        objects.append(service(name, shape.name, platform.namespace, shape.port, shape.port_name))
    return objects


def agent_env(agent: Agent, platform: Platform) -> list[Object]:
    """What every agent process gets (the guide's Settings need each of the LiveKit and
    OpenAI variables present); the agent's own ``env`` and ``secretEnv`` win."""
    secret = platform.secret_name
    chosen: dict[str, Object] = {}

    def put(item: Object) -> None:
        chosen[item["name"]] = item

    put(env_value("STELLA_AGENT_NAME", agent.name))
    put(env_value("ROOM_NAME", ""))  # pool mode: any session of this agent
    put(env_value("STELLA_MAX_SESSIONS", str(agent.max_sessions)))
    put(env_value("STELLA_DRAIN_TIMEOUT_S", str(agent.drain_timeout_seconds)))
    put(env_value("STELLA_TOOL_TIMEOUT_S", str(agent.tool_executor.tool_timeout_seconds)))
    if platform.llm:
        put(env_value("OPENAI_BASE_URL", f"http://stella-llm:{LLM_PORT}/v1"))
        put(env_value("OPENAI_API_KEY", LOCAL_LLM_KEY))
    else:
        put(env_secret("OPENAI_API_KEY", secret, SECRET_KEYS["OPENAI_API_KEY"]))
    for var in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        if platform.livekit_url:
            put(env_secret(var, secret, SECRET_KEYS[var]))
        else:
            put(env_value(var, ""))
    for name, value in agent.env.items():
        put(env_value(name, value))
    for name, ref in agent.secret_env.items():
        put(env_secret(name, ref.secret, ref.key))
    return list(chosen.values())


def agent_container(
    name: str, agent: Agent, command: list[str] | None, env: list[Object], spec: Resources
) -> Object:
    container: Object = {"name": name, "image": agent.image}
    if command is not None:
        container["command"] = command
    container |= {
        "envFrom": [{"configMapRef": {"name": PLATFORM_CONFIG}}],
        "env": env,
        "resources": resources(spec),
        "readinessProbe": ready_file_probe(),
        "securityContext": container_security(),
    }
    return container


def agent_objects(agent: Agent, platform: Platform) -> list[Object]:
    namespace = platform.namespace
    env = agent_env(agent, platform)
    # agent images follow the guide's Dockerfile, which runs as root: no runAsNonRoot
    pod_security = {"seccompProfile": {"type": "RuntimeDefault"}}
    runner = f"{agent.name}-runner"
    objects = [
        deployment(
            runner,
            "agent-runner",
            namespace,
            # the image's own command: the guide's `python -m src.agent` (agent.run())
            agent_container("agent-runner", agent, None, env, agent.resources),
            None,
            agent.drain_timeout_seconds + 15,  # the drain, then room to close cleanly
            pod_security,
        ),
        autoscaler(runner, "agent-runner", namespace, agent.autoscaling),
    ]
    tools = agent.tool_executor
    if not tools.enabled:
        return objects
    executor = f"{agent.name}-tools"
    tools_env = [
        *env,
        env_value("STELLA_TOOL_MODULES", ",".join(tools.modules)),
        env_value("STELLA_AGENT_PATH", tools.agent_path),
    ]
    command = ["stella", "serve", "tool-executor"]
    objects += [
        deployment(
            executor,
            "tool-executor",
            namespace,
            agent_container(
                "tool-executor", agent, command, tools_env, tools.resources or agent.resources
            ),
            None,
            tools.tool_timeout_seconds + 10,  # calls in flight still get their answer
            pod_security,
        ),
        autoscaler(executor, "tool-executor", namespace, tools.autoscaling),
    ]
    return objects


def platform_objects(platform: Platform) -> list[Object]:
    namespace: Object = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": platform.namespace, "labels": {"app.kubernetes.io/part-of": PART_OF}},
    }
    objects = [namespace, platform_config(platform)]
    for name, shape in SHAPES.items():
        if name == "llm" and not platform.llm:
            continue
        objects += platform_service(platform, shape)
    return objects


def render_files(config: AgentsConfig) -> dict[str, list[Object]]:
    """``platform.yaml`` and one ``agent-<name>.yaml`` per agent, in apply order."""
    files = {"platform.yaml": platform_objects(config.platform)}
    for agent in config.agents:
        files[f"agent-{agent.name}.yaml"] = agent_objects(agent, config.platform)
    return files


def render(config: AgentsConfig) -> list[Object]:
    return [obj for objects in render_files(config).values() for obj in objects]


HEADER = "# Rendered by `stella deploy render` from {source}; edit that file, not this one.\n"


def to_yaml(objects: list[Object], source: str) -> str:
    body = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=100)
    return HEADER.format(source=source) + body
