"""``agents-config.yaml``: the guide's file (agents with name, image, resources), plus
optional settings with defaults. Every problem is reported with its line and field.

Keys are camelCase, as in Kubernetes objects; an unknown key is an error (a typo would
otherwise be ignored silently).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from stella_services.deploy import quantities
from stella_services.deploy.config_file import (
    ConfigError,
    Located,
    Path,
    Problem,
    load_located,
)

# Names become Kubernetes object names and label values (≤ 63 characters with the
# "-tools" suffix and room to spare).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
NO_SPACE = r"^[^\s]+$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=50)]
SecretName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, max_length=253)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME)]
ImageRef = Annotated[str, StringConstraints(pattern=NO_SPACE)]
# What a pattern means, for error messages
PATTERN_MEANING = {
    DNS_LABEL: "a Kubernetes name: lowercase letters, digits and '-', starting and ending "
    "with a letter or digit",
    ENV_NAME: "an environment variable name: letters, digits and '_', not starting with a digit",
    DNS_SUBDOMAIN: "a Kubernetes object name: lowercase letters, digits, '-' and '.'",
    NO_SPACE: "an image reference (no spaces)",
}


def _quantity_text(value: Any) -> Any:
    """YAML may give ``cpu: 1`` or ``cpu: 0.5`` as numbers; Kubernetes takes their text."""
    if isinstance(value, bool):
        return value  # left for the str check to refuse
    if isinstance(value, int | float):
        return str(value)
    return value


def _env_text(value: Any) -> Any:
    """``PORT: 8080`` or ``DEBUG: true`` in YAML: the environment holds their text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


EnvValue = Annotated[str, BeforeValidator(_env_text)]
Cpu = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(quantities.cpu),
    WithJsonSchema({"type": ["string", "number"], "description": "cores: 250m, 0.5, 1"}),
]
Memory = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(quantities.memory),
    WithJsonSchema({"type": ["string", "integer"], "description": "bytes: 512Mi, 2Gi"}),
]


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, validate_by_name=True
    )


class ResourceAmounts(Model):
    cpu: Cpu
    memory: Memory


class Resources(Model):
    requests: ResourceAmounts
    limits: ResourceAmounts | None = None


class Autoscaling(Model):
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=5, ge=1)
    target_cpu_utilization: int = Field(default=70, ge=1, le=100, description="percent")


class SecretRef(Model):
    secret: SecretName
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$")]


class ToolExecutor(Model):
    enabled: bool = True
    modules: list[Annotated[str, StringConstraints(min_length=1)]] = ["src.tools"]
    agent_path: str = Field(default="/app", description="the image's folder of the author's code")
    tool_timeout_seconds: int = Field(default=30, ge=1)
    resources: Resources | None = Field(default=None, description="default: the agent's")
    autoscaling: Autoscaling = Autoscaling()


class Agent(Model):
    name: DnsLabel
    image: ImageRef
    resources: Resources
    autoscaling: Autoscaling = Autoscaling()
    max_sessions: int = Field(default=50, ge=1, description="sessions one runner holds")
    drain_timeout_seconds: int = Field(default=30, ge=0, description="on SIGTERM")
    env: dict[EnvName, EnvValue] = {}
    secret_env: dict[EnvName, SecretRef] = {}
    tool_executor: ToolExecutor = ToolExecutor()


PlatformService = Literal["gateway", "stt", "tts", "recorder", "llm"]


class PlatformServiceConfig(Model):
    replicas: int | None = Field(default=None, ge=1)
    resources: Resources | None = None
    env: dict[EnvName, EnvValue] = {}


class Platform(Model):
    namespace: DnsLabel = "stella"
    image_registry: ImageRef = Field(default="stella", description="<registry>/<service>:<tag>")
    image_tag: Annotated[str, StringConstraints(pattern=r"^[\w][\w.-]{0,127}$")] = "latest"
    nats_url: Annotated[
        str, StringConstraints(pattern=r"^(nats|tls)://[^\s,]+(,(nats|tls)://[^\s,]+)*$")
    ] = Field(
        default="nats://nats:4222", description="a node, or a cluster's nodes, comma-separated"
    )
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="copies JetStream keeps of streams and buckets (3: a cluster)",
    )
    secret_name: SecretName = "stella-secrets"
    livekit_url: Annotated[str, StringConstraints(pattern=r"^(wss?://\S+)?$")] = ""
    llm: bool = Field(default=False, description="run the local llm; agents use it")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    services: dict[PlatformService, PlatformServiceConfig] = {}


class AgentsConfig(Model):
    agents: list[Agent] = Field(min_length=1)
    platform: Platform = Platform()


def _resource_problems(resources: Resources, at: Path) -> list[tuple[Path, str]]:
    if resources.limits is None:
        return []
    found = []
    for name in ("cpu", "memory"):
        asked: str = getattr(resources.requests, name)
        limit: str = getattr(resources.limits, name)
        if quantities.parse_quantity(asked) > quantities.parse_quantity(limit):
            found.append(((*at, "requests", name), f"{asked} is more than its limit {limit}"))
    return found


def _autoscaling_problems(scaling: Autoscaling, at: Path) -> list[tuple[Path, str]]:
    if scaling.min_replicas > scaling.max_replicas:
        return [
            (
                (*at, "minReplicas"),
                f"{scaling.min_replicas} is more than maxReplicas {scaling.max_replicas}",
            )
        ]
    return []


def semantic_problems(config: AgentsConfig) -> list[tuple[Path, str]]:
    """What each field allows alone but not together: repeated names, requests above
    limits, more minimum than maximum replicas."""
    found: list[tuple[Path, str]] = []
    first: dict[str, int] = {}
    for i, agent in enumerate(config.agents):
        at: Path = ("agents", i)
        if agent.name in first:
            found.append(
                (
                    (*at, "name"),
                    f"{agent.name!r} is already the name of agents[{first[agent.name]}]",
                )
            )
        first.setdefault(agent.name, i)
        found += _resource_problems(agent.resources, (*at, "resources"))
        found += _autoscaling_problems(agent.autoscaling, (*at, "autoscaling"))
        tools = agent.tool_executor
        if tools.resources is not None:
            found += _resource_problems(tools.resources, (*at, "toolExecutor", "resources"))
        found += _autoscaling_problems(tools.autoscaling, (*at, "toolExecutor", "autoscaling"))
    for name, settings in config.platform.services.items():
        if settings.resources is not None:
            at = ("platform", "services", name, "resources")
            found += _resource_problems(settings.resources, at)
    return found


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        pattern = error["ctx"]["pattern"]
        return f"{error['input']!r} is not {PATTERN_MEANING.get(pattern, f'like {pattern}')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message.split(" or instance of ")[0]  # pydantic's class names mean nothing here


def _path_of(loc: tuple[Any, ...]) -> Path:
    # "[key]" marks an error in a mapping's key rather than its value: the key is the field
    return tuple(p for p in loc if isinstance(p, str | int) and p != "[key]")


def validate_located(located: Located, filename: str) -> AgentsConfig:
    """Check parsed data against the model; raise :class:`ConfigError` naming lines."""
    try:
        config = AgentsConfig.model_validate(located.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = _path_of(error["loc"])
            problems.append(Problem(located.line_of(path), path, _message(error)))
        raise ConfigError(filename, problems) from None
    semantic = semantic_problems(config)
    if semantic:
        raise ConfigError(
            filename, [Problem(located.line_of(path), path, msg) for path, msg in semantic]
        )
    return config


def parse_config(text: str, filename: str = "agents-config.yaml") -> AgentsConfig:
    """The whole file, checked; the one entry point for the command line."""
    return validate_located(load_located(text, filename), filename)
