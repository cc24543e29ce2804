"""The deploy.toml schema: one pydantic model is the single source of truth.

Every model forbids unknown keys, because a typo silently ignored (``stratgy = "canary"``) is a production
incident waiting to happen. Durations are written the way people write them ("30s", "2m", "1h") and held as
seconds so the rest of the code never parses strings.
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
# Service names become file names, URL parts, metric labels and platform object names.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from "500ms", "30s", "2m", "1h", "1d" or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '2m' or '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration; write it like '30s', '2m' or '1h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Mode(StrEnum):
    """How much ceremony a deployment needs (the skill's three modes)."""

    GREENFIELD = "greenfield"
    BROWNFIELD_POLISH = "brownfield-polish"
    BROWNFIELD_ENTERPRISE = "brownfield-enterprise"


class StrategyName(StrEnum):
    ROLLING = "rolling"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"
    RECREATE = "recreate"
    FEATURE_FLAG = "feature-flag"


class AnalysisMethod(StrEnum):
    """How measurements become a verdict: an anytime-valid test on every sample, or fixed thresholds per interval."""

    SEQUENTIAL = "sequential"
    INTERVAL = "interval"


class Takeover(StrEnum):
    """What a replica does with a deployment another replica was driving when it died."""

    HOLD = "hold"
    RESUME = "resume"
    ROLLBACK = "rollback"


class TargetKind(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"
    ECS = "ecs"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Tier(Strict):
    """A warn / critical pair: warn pauses for a decision, critical rolls back."""

    warn: float = Field(ge=0)
    critical: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Tier:
        if self.critical < self.warn:
            raise ValueError(f"critical ({self.critical}) must be at least warn ({self.warn})")
        return self


class Thresholds(Strict):
    """Metric limits; the defaults are the skill's (error rate 1% / 5%, p95 500 ms / 2000 ms)."""

    error_rate: Tier = Field(default_factory=lambda: Tier(warn=0.01, critical=0.05))
    latency_p95_ms: Tier = Field(default_factory=lambda: Tier(warn=500, critical=2000))
    latency_p99_ms: Tier | None = None

    @field_validator("error_rate")
    @classmethod
    def _rate_is_fraction(cls, tier: Tier) -> Tier:
        if tier.critical > 1:
            raise ValueError("error rates are fractions between 0 and 1 (0.05 means 5%)")
        return tier


class ThresholdOverrides(Strict):
    """Per-service or per-environment overrides; whatever is left out is inherited."""

    error_rate: Tier | None = None
    latency_p95_ms: Tier | None = None
    latency_p99_ms: Tier | None = None


class Analysis(Strict):
    """How each step is judged (Argo Rollouts / Flagger semantics, see the docs)."""

    interval: Duration = 10.0
    bake: Duration = 30.0
    min_requests: int = Field(default=50, ge=0)
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=0, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    compare_baseline: bool = True
    method: AnalysisMethod = AnalysisMethod.SEQUENTIAL
    confidence: float = Field(default=0.95, ge=0.8, le=0.9999)


class RecordedCheck(Strict):
    path: str = "/health"
    timeout: Duration = 5.0


class ReleaseOverride(Strict):
    """How a specific release differs: the local platform uses this to describe good and bad releases."""

    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    image: str | None = None
    migrations_irreversible: bool = False

    @property
    def declared_reversible(self) -> bool:
        """``migrations_irreversible = false`` written out: a person overruling the lint or a mark set by mistake
        (the default false says nothing). Rollback, validate and preflight all honour it."""
        return "migrations_irreversible" in self.model_fields_set and not self.migrations_irreversible


class EcsRouting(Strict):
    """The ALB side of one environment: the listener whose weighted forward splits traffic, one target group per
    version slot (blue, green), and where users reach it."""

    listener: str = Field(description="ARN of the ALB listener, or of a listener rule, whose forward is weighted.")
    target_groups: list[str] = Field(min_length=2, max_length=2, description="Two target group ARNs: blue, green.")
    url: str | None = Field(default=None, description="How users reach the listener; else the ALB's DNS name.")
    test_listener: str | None = Field(default=None, description="A second listener for previews (optional).")
    test_url: str | None = Field(default=None, description="How the test listener is reached; else its DNS name.")


class Environment(Strict):
    strategy: StrategyName = StrategyName.ROLLING
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [5, 25, 50, 100])
    port: int | None = Field(default=None, ge=1, le=65535)
    replicas: int | None = Field(default=None, ge=1)
    max_surge: int = Field(default=1, ge=0)
    max_unavailable: int = Field(default=0, ge=0)
    analysis: Analysis = Field(default_factory=Analysis)
    thresholds: ThresholdOverrides = Field(default_factory=ThresholdOverrides)
    requires: list[str] = Field(default_factory=list)
    scale_down_delay: Duration = 30.0
    production: bool | None = None
    namespace: str | None = None
    cluster: str | None = None
    ecs: EcsRouting | None = Field(
        default=None, description="ECS target: the ALB listener and the two target groups of this environment."
    )

    @field_validator("steps")
    @classmethod
    def _steps_ramp_up(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("give at least one step, for example [5, 25, 50, 100]")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"steps must increase, got {steps}")
        if steps[-1] != 100:
            steps = [*steps, 100]
        return steps

    @model_validator(mode="after")
    def _surge_or_unavailable(self) -> Environment:
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0: the rollout could never progress")
        return self


class FeatureFlag(Strict):
    """A flag in a flagd-format JSON file (OpenFeature) that the service reads."""

    name: str
    file: str = ".deploy/flags.json"


class Service(Strict):
    target: TargetKind = TargetKind.LOCAL
    command: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    inherit_env: list[str] = Field(
        default_factory=list,
        description="Names of variables the service's instances get from deploy-mcp's own environment "
        "(local platform). Besides these they get only PATH, HOME, LANG, TZ, env and PORT, VERSION, SERVICE.",
    )
    image: str | None = None
    manifest: str | None = Field(
        default=None,
        description="Kubernetes: a Deployment manifest (relative to deploy.toml) whose image, labels and replicas "
        "deploy-mcp sets; everything else is kept.",
    )
    task_definition: str | None = Field(
        default=None, description="ECS: a task definition family, or a JSON file of one kept in the repo."
    )
    container: str | None = Field(default=None, description="ECS: the container that gets the image.")
    container_port: int = Field(default=8080, ge=1, le=65535, description="ECS: the port the ALB forwards to.")
    replicas: int = Field(default=2, ge=1)
    health: str = "/health"
    smoke: list[str] = Field(default_factory=lambda: ["/health"])
    requests_per_second: float | None = Field(default=None, ge=0)
    instant_rollback_critical: bool = False
    # Preflight: what it checks besides the policy (see deploy_mcp/preflight).
    registry_insecure: bool = Field(
        default=False, description="Ask the image's registry over plain http (always so for localhost)."
    )
    test_command: list[str] | None = Field(
        default=None, description="Runs the tests before a deploy; its result is recorded per commit."
    )
    test_timeout: Duration = Field(default=600.0, description="How long the test command may run.")
    migrations: str | None = Field(
        default=None, description="The folder of this service's migrations, relative to deploy.toml."
    )
    flag: FeatureFlag | None = None
    thresholds: ThresholdOverrides = Field(default_factory=ThresholdOverrides)
    versions: dict[str, ReleaseOverride] = Field(default_factory=dict)
    environments: dict[str, Environment] = Field(default_factory=dict)

    @field_validator("smoke")
    @classmethod
    def _paths(cls, smoke: list[str]) -> list[str]:
        for check in smoke:
            if not check.lstrip("!").startswith("/"):
                raise ValueError(f"smoke check {check!r} must be a path starting with '/' ('!/path' expects 404)")
        return smoke

    @field_validator("inherit_env")
    @classmethod
    def _variable_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _VARIABLE_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name; list names only, such as "
                    '["DATABASE_URL", "AWS_PROFILE"] (values stay in the environment)'
                )
        return names

    @field_validator("command")
    @classmethod
    def _has_port(cls, command: list[str] | None) -> list[str] | None:
        if command is not None and not command:
            raise ValueError("command cannot be empty")
        return command


class KubernetesRouter(StrEnum):
    """How traffic is split between versions: by replica counts behind one Service, or by Gateway API weights."""

    SERVICE = "service"
    GATEWAY_API = "gateway-api"


class KubernetesTarget(Strict):
    """Where and how the Kubernetes driver works; credentials stay in the kubeconfig or the pod's service account."""

    kubeconfig: str | None = Field(
        default=None, description="Path to a kubeconfig; default $KUBECONFIG, then ~/.kube/config."
    )
    context: str | None = Field(default=None, description="kubeconfig context; default its current context.")
    in_cluster: bool = Field(default=False, description="Use the pod's service account instead of a kubeconfig.")
    namespace: str = "default"
    allowed_namespaces: list[str] = Field(
        default_factory=list, description="When set, any namespace outside this list is refused at call time."
    )
    router: KubernetesRouter = Field(
        default=KubernetesRouter.SERVICE,
        description="service: weights are replica ratios; gateway-api: an HTTPRoute with exact backendRef weights.",
    )
    gateway: str | None = Field(
        default=None,
        description="NAMESPACE/NAME of the Gateway the HTTPRoute attaches to; without it the route attaches to the "
        "service itself (a GAMMA mesh route).",
    )
    service_port: int = Field(default=80, ge=1, le=65535, description="The port of the Services deploy-mcp creates.")
    container_port: int = Field(default=8080, ge=1, le=65535, description="The port the container listens on.")
    progress_deadline: Duration = Field(default=600.0, description="Deployment progressDeadlineSeconds.")


class EcsTarget(Strict):
    """Where the ECS target works; credentials come only from the standard AWS chain (never from here)."""

    cluster: str = "default"
    region: str | None = None
    profile: str | None = Field(default=None, description="A profile of ~/.aws/config; else the default chain.")
    endpoint_url: str | None = Field(
        default=None, description="Another AWS endpoint (an emulator, a VPC endpoint); AWS_ENDPOINT_URL works too."
    )
    allowed_clusters: list[str] = Field(
        default_factory=list, description="Clusters deploy-mcp may change; empty: only the configured ones."
    )
    allowed_services: list[str] = Field(
        default_factory=list, description="ECS service names (shell patterns, e.g. 'web-*') it may change."
    )
    launch_type: str | None = Field(default=None, description="FARGATE or EC2; else the cluster's default.")
    subnets: list[str] = Field(default_factory=list, description="awsvpc subnets of the tasks (Fargate).")
    security_groups: list[str] = Field(default_factory=list, description="Security groups of the tasks (awsvpc).")
    assign_public_ip: bool = Field(default=False, description="Give Fargate tasks a public IP (public subnets).")
    metrics_period: int = Field(
        default=60, ge=1, description="CloudWatch period in seconds of the ALB metrics (60 for standard ones)."
    )


class PrometheusSource(Strict):
    """PromQL templates; {service}, {environment}, {version} and {window} are filled in per query."""

    url: str
    requests: str = (
        'sum(increase(deploy_mcp_requests_total{{service="{service}",environment="{environment}",'
        'version="{version}"}}[{window}]))'
    )
    error_rate: str = (
        '(sum(rate(deploy_mcp_requests_total{{service="{service}",environment="{environment}",version="{version}",'
        'status=~"5.."}}[{window}])) or vector(0))'
        ' / sum(rate(deploy_mcp_requests_total{{service="{service}",environment="{environment}",'
        'version="{version}"}}[{window}]))'
    )
    scrape_interval: Duration = 15.0
    latency_p95: str = (
        "histogram_quantile(0.95, sum by (le) (rate(deploy_mcp_request_duration_seconds_bucket"
        '{{service="{service}",environment="{environment}",version="{version}"}}[{window}])))'
    )
    latency_p99: str = (
        "histogram_quantile(0.99, sum by (le) (rate(deploy_mcp_request_duration_seconds_bucket"
        '{{service="{service}",environment="{environment}",version="{version}"}}[{window}])))'
    )


class TargetSettings(Strict):  # the [targets] table (targets.registry.Targets picks a platform per service)
    kubernetes: KubernetesTarget = Field(default_factory=KubernetesTarget)
    ecs: EcsTarget = Field(default_factory=EcsTarget)
    prometheus: PrometheusSource | None = None


class DeployWindow(Strict):
    """A recurring window in UTC when production changes are allowed."""

    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu"])
    start: str = "09:00"
    end: str = "16:00"

    @field_validator("days")
    @classmethod
    def _days(cls, days: list[str]) -> list[str]:
        allowed = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        for day in days:
            if day not in allowed:
                raise ValueError(f"{day!r} is not one of {', '.join(allowed)}")
        return days

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"{value!r} is not a time of day; write it as HH:MM in UTC")
        return value


class Policy(Strict):
    read_only: bool = False
    allowed_environments: list[str] | None = None
    production_environments: list[str] = Field(default_factory=lambda: ["production", "prod"])
    allow_recreate_in_production: bool = False
    require_confirmation: bool = True
    deploy_windows: list[DeployWindow] = Field(default_factory=list)
    on_call: str | None = None
    escalation_path: list[str] = Field(default_factory=lambda: ["on-call", "team-lead", "director"])
    monitoring_period: Duration | None = None
    on_interrupted: Takeover = Field(
        default_factory=lambda: Takeover.HOLD,
        description=(
            "What a server replica (deploy-mcp serve --http) does with a deployment whose driving replica died, "
            "once its lock lease has run out: hold (mark it interrupted and wait for a person to resume, abort or "
            "roll back), resume (take it over and carry on), rollback (take it over and undo it)."
        ),
    )


class DeployConfig(Strict):
    """The whole of deploy.toml."""

    mode: Mode = Mode.GREENFIELD
    project: str | None = None
    ledger: str | None = Field(
        default=None,
        description=(
            "A team's shared ledger: a PostgreSQL URL such as 'postgresql://deploy@db.internal/deploy_mcp' "
            "(DEPLOY_MCP_LEDGER overrides it). Never with a password: that comes from PGPASSWORD or "
            "DEPLOY_MCP_LEDGER_PASSWORD_FILE. Left out: the SQLite file .deploy/ledger.db. See Running for a team."
        ),
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    policy: Policy = Field(default_factory=Policy)
    targets: TargetSettings = Field(default_factory=TargetSettings)
    services: dict[str, Service] = Field(default_factory=dict)

    @field_validator("ledger")
    @classmethod
    def _ledger_url(cls, value: str | None) -> str | None:
        from deploy_mcp.ledger.dsn import check_config_url

        return None if value is None else check_config_url(value)

    @model_validator(mode="after")
    def _requires_known(self) -> DeployConfig:
        for name, service in self.services.items():
            for env_name, env in service.environments.items():
                for needed in env.requires:
                    if needed not in service.environments:
                        raise ValueError(
                            f"services.{name}.environments.{env_name}.requires: {needed!r} is not an environment "
                            f"of {name}; known: {', '.join(service.environments) or 'none'}"
                        )
        return self

    @model_validator(mode="after")
    def _service_names(self) -> DeployConfig:
        bad = [name for name in self.services if not _SERVICE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(
                "; ".join(
                    f"services.{_toml_key(name)}: a service name may hold only letters, digits, '-', '_' and '.', "
                    f"start with a letter or digit and be at most 63 characters; rename it, e.g. "
                    f"services.{_suggest_name(name)}"
                    for name in bad
                )
            )
        return self

    @model_validator(mode="after")
    def _local_services_have_a_command(self) -> DeployConfig:
        """Without it nothing can start; say so when deploy.toml loads, not when the first deployment is tried.
        A command given only per version (``[services.X.versions."V"] command``) counts: releases resolve it."""
        missing = [
            name
            for name, service in self.services.items()
            if service.target is TargetKind.LOCAL
            and not service.command
            and not any(release.command for release in service.versions.values())
        ]
        if missing:
            raise ValueError(
                "; ".join(
                    f"services.{_toml_key(name)}.command: required key is missing: the local target starts each "
                    'instance with it, e.g. command = ["{python}", "-m", "myapp", "--port", "{port}"]; '
                    'or set target = "kubernetes" or "ecs"'
                    for name in missing
                )
            )
        return self

    def is_production(self, service: str, environment: str) -> bool:
        """Production is what the policy calls production, unless this service's environment says otherwise.

        Per service on purpose: one service declaring its ``production`` environment a sandbox must not switch off
        the confirmation, windows and approvals of every other service's environment of that name.
        """
        svc = self.services.get(service)
        env = svc.environments.get(environment) if svc is not None else None
        if env is not None and env.production is not None:
            return env.production
        return environment in self.policy.production_environments

    def thresholds_for(self, service: str, environment: str) -> Thresholds:
        """Global thresholds, then the service's overrides, then the environment's."""
        merged = self.thresholds.model_dump()
        svc = self.services[service]
        layers = [svc.thresholds]
        if environment in svc.environments:
            layers.append(svc.environments[environment].thresholds)
        for layer in layers:
            merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
        return Thresholds.model_validate(merged)


def _toml_key(name: str) -> str:
    """A key as it is written in deploy.toml, quoted when it is not a bare key."""
    return name if _BARE_KEY.fullmatch(name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _suggest_name(name: str) -> str:
    suggestion = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:63] or "web"
    return _toml_key(suggestion)
