"""Settings of sleuth, read from the environment (prefix ``SLEUTH_``) and a ``.env`` file.

Nothing here runs at import time: call `load_settings()` where a process starts.
Nested fields use ``__`` as the separator, e.g. ``SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS=4``;
lists and maps (model tiers, prices) are given as JSON, e.g. ``SLEUTH_LLM__TIERS='[...]'``.
Secrets are `SecretStr` and are unwrapped only where a client is built.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from core.errors import ConfigurationError


class Profile(StrEnum):
    """Where sleuth runs; production refuses unsafe settings."""

    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutSettings(_Section):
    """Time limits of one guarded call."""

    connect_s: float = Field(2.0, gt=0, description="to open a connection")
    response_s: float = Field(30.0, gt=0, description="for one attempt to answer")
    total_budget_s: float = Field(60.0, gt=0, description="for the call, retries and waits")
    stream_stall_s: float = Field(10.0, gt=0, description="longest silence between stream tokens")


class RetrySettings(_Section):
    """Retries of transient failures: exponential backoff with jitter."""

    max_attempts: int = Field(3, ge=1, le=20)
    initial_backoff_s: float = Field(0.2, ge=0)
    max_backoff_s: float = Field(5.0, ge=0)
    jitter_s: float = Field(0.2, ge=0)


class BreakerSettings(_Section):
    """Circuit breaker: opens on N consecutive failures or a failure rate over a window."""

    failure_threshold: int = Field(5, ge=1, description="consecutive failures that open it")
    failure_rate_threshold: float = Field(0.5, gt=0, le=1)
    window_size: int = Field(20, ge=1, description="recent calls the rate is computed over")
    min_calls: int = Field(10, ge=1, description="calls in the window before the rate counts")
    cooldown_s: float = Field(30.0, gt=0, description="open time before one probe is let through")
    probe_timeout_s: float = Field(60.0, gt=0, description="a probe not reported by then is lost")

    @model_validator(mode="after")
    def _rate_rule_can_fire(self) -> BreakerSettings:
        if self.min_calls > self.window_size:
            raise ValueError(
                f"min_calls ({self.min_calls}) exceeds window_size ({self.window_size}): "
                "the failure-rate rule could never fire"
            )
        return self


class ResilienceSettings(_Section):
    """The one policy that wraps every model and connector call."""

    timeouts: TimeoutSettings = TimeoutSettings()
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()


TierKind = Literal["anthropic", "openai", "rules", "human"]


class ModelTierSettings(_Section):
    """One tier of the model gateway, in fallback order."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")
    kind: TierKind
    model: str = ""
    base_url: str | None = None
    api_key: SecretStr | None = None
    in_house: bool = Field(
        False, description="keeps data on infrastructure we control (self-hosted, rules, human)"
    )
    enabled: bool = True
    max_tokens: int = Field(2048, ge=1)
    resilience: ResilienceSettings | None = Field(
        None, description="overrides the global policy for this tier"
    )

    @model_validator(mode="after")
    def _check_kind(self) -> ModelTierSettings:
        if self.kind in ("anthropic", "openai") and not self.model:
            raise ValueError(f"tier {self.name!r}: a {self.kind} tier needs a model")
        return self

    @property
    def keeps_data_in_house(self) -> bool:
        """Say whether a sensitive request may be sent to this tier."""
        return self.in_house or self.kind in ("rules", "human")


class ModelPrice(_Section):
    """USD per million tokens."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cache_read: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)


def _default_tiers() -> list[ModelTierSettings]:
    return [
        ModelTierSettings(name="anthropic", kind="anthropic", model="claude-sonnet-4-6"),
        ModelTierSettings(name="openai", kind="openai", model="gpt-4.1"),
        ModelTierSettings(name="rules", kind="rules"),
        ModelTierSettings(name="human", kind="human"),
    ]


def _default_prices() -> dict[str, ModelPrice]:
    # List prices at the time of writing; operators override them in config.
    return {
        "claude-sonnet-4-6": ModelPrice(
            input=Decimal("3"), output=Decimal("15"),
            cache_read=Decimal("0.30"), cache_write=Decimal("3.75"),
        ),
        "claude-haiku-4-5": ModelPrice(
            input=Decimal("1"), output=Decimal("5"),
            cache_read=Decimal("0.10"), cache_write=Decimal("1.25"),
        ),
        "gpt-4.1": ModelPrice(input=Decimal("2"), output=Decimal("8"), cache_read=Decimal("0.50")),
        "gpt-4.1-mini": ModelPrice(
            input=Decimal("0.40"), output=Decimal("1.60"), cache_read=Decimal("0.10")
        ),
    }


class LLMSettings(_Section):
    """The model gateway: ordered tiers and the price table."""

    tiers: list[ModelTierSettings] = Field(default_factory=_default_tiers)
    prices: dict[str, ModelPrice] = Field(default_factory=_default_prices)

    @model_validator(mode="after")
    def _unique_names(self) -> LLMSettings:
        names = [t.name for t in self.tiers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(duplicates)}")
        return self


class AgentSettings(_Section):
    """How investigations run."""

    window_before_hours: float = Field(24, gt=0, le=24 * 31, description="look back this far")
    window_after_minutes: float = Field(10, ge=0, le=24 * 60, description="and this far ahead")
    followup_max_rounds: int = Field(2, ge=0, le=5, description="model follow-up query rounds")
    followup_max_calls: int = Field(6, ge=0, le=30, description="follow-up calls in all")
    call_budget_s: float = Field(20, gt=0, description="budget of one connector call")
    playbooks_dir: Path | None = Field(None, description="None: the packaged playbooks")


class GovernanceSettings(_Section):
    """Who may approve what, and for how long approvals wait."""

    reviewers_file: Path | None = Field(
        None, description="reviewers with roles and password hashes; None: the demo reviewers "
                          "(refused in production)")
    approval_expiry_hours: float = Field(4, gt=0, le=24 * 14)
    taxonomy_dir: Path | None = Field(None, description="None: the packaged taxonomy")


class QueueSettings(_Section):
    """Where accepted tickets wait for a worker, and how hard the service pushes back."""

    backend: Literal["embedded", "procrastinate"] = Field(
        "embedded", description="embedded: a job table in the database, workers in the API "
                                "process; procrastinate: PostgreSQL, workers from `sleuth worker`")
    url: SecretStr | None = Field(
        None, description="procrastinate's PostgreSQL; None: the database_url")
    name: str = Field("investigations", pattern=r"^[a-z0-9_]{1,40}$")
    max_depth: int = Field(1000, ge=1, description="waiting jobs above which webhooks get 429")
    retry_after_s: int = Field(30, ge=1, description="the Retry-After of a 429")
    max_attempts: int = Field(5, ge=1, le=50, description="tries of one job before it fails")
    lease_s: float = Field(60, gt=0, description="embedded: a job not renewed for this long "
                                                 "is taken again")
    heartbeat_s: float = Field(2, gt=0, description="how often a worker says it is alive")
    stalled_after_s: float = Field(10, gt=0, description="silence after which a worker's "
                                                         "jobs are given to others")
    concurrency: int = Field(4, ge=1, le=256, description="investigations one worker runs at once")


class ServiceSettings(_Section):
    """The HTTP service: webhooks, the API and the workers it runs."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    body_limit_bytes: int = Field(262_144, ge=1_024, description="largest webhook body")
    webhook_tolerance_s: int = Field(300, ge=1, description="oldest signature timestamp taken")
    zendesk_secret: SecretStr | None = Field(None, description="Zendesk webhook signing secret")
    intercom_secret: SecretStr | None = Field(None, description="Intercom app client secret")
    generic_secret: SecretStr | None = Field(None, description="HMAC key of generic webhooks")
    tokens_file: Path | None = Field(
        None, description="API tokens (sha256) with roles; None: no API token is accepted")
    rate_limit: str = Field("600/minute", description="per API token, `limits` notation")
    embedded_workers: bool | None = Field(
        None, description="run workers in the API process; None: when the queue is embedded")
    embedded_workers_in: Literal["process", "thread"] = Field(
        "process", description="process: a child process of `sleuth serve`, so investigations "
                               "never hold the API's GIL; thread: one process only")
    sandbox_cases: Path | None = Field(
        None, description="demo and tests: investigate against these cases' sandbox worlds")
    sandbox_latency_s: float = Field(0.0, ge=0, description="added to every sandbox answer")


class TelemetrySettings(_Section):
    """Logs and metrics."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True


_PLACEHOLDER = re.compile(
    r"^(|changeme|change-me|placeholder|secret|password|test|dummy|example|todo|tbd|none|null|"
    r"x+|\*+|\.\.\.|<.*>|\{\{.*\}\}|\$\{.*\}|your[-_ ].*|"
    r"(sk|pk|rk)[-_](test|live)?[-_]?(x+|\.\.\.)?|"
    r"sk-ant-(x+|\.\.\.)?|sk-(x+|\.\.\.)?|"
    # vendor documentation samples: "sk-ant-api03-...", "sk-proj-xxxx", "ghp_XXXX"
    r".*\.\.\.|.*(x{4,}|X{4,}))$",
    re.IGNORECASE,
)


def is_placeholder(secret: SecretStr | None) -> bool:
    """Say whether a secret is missing, empty or an obvious placeholder."""
    if secret is None:
        return True
    return bool(_PLACEHOLDER.match(secret.get_secret_value().strip()))


class Settings(BaseSettings):
    """Everything sleuth can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="SLEUTH_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
    )

    profile: Profile = Profile.DEV
    data_dir: Path = Path("var")
    database_url: SecretStr = Field(
        SecretStr("sqlite:///var/sleuth.db"),
        description="defaults to a SQLite file in data_dir")
    redis_url: SecretStr | None = None
    breaker_backend: Literal["memory", "redis"] = "memory"
    resilience: ResilienceSettings = ResilienceSettings()
    llm: LLMSettings = LLMSettings()
    agent: AgentSettings = AgentSettings()
    governance: GovernanceSettings = GovernanceSettings()
    queue: QueueSettings = QueueSettings()
    service: ServiceSettings = ServiceSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @model_validator(mode="before")
    @classmethod
    def _database_in_data_dir(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("database_url"):
            data_dir = values.get("data_dir") or "var"
            values = {**values, "database_url": f"sqlite:///{Path(str(data_dir)) / 'sleuth.db'}"}
        return values

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        problems = production_problems(self) if self.profile is Profile.PRODUCTION else []
        if self.breaker_backend == "redis" and self.redis_url is None:
            problems.append("breaker_backend=redis needs SLEUTH_REDIS_URL")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def workers_in_process(self) -> bool:
        """Say whether the API process runs the workers itself."""
        if self.service.embedded_workers is not None:
            return self.service.embedded_workers
        return self.queue.backend == "embedded"

    def tier(self, name: str) -> ModelTierSettings:
        """Return the tier called `name`."""
        for tier in self.llm.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def resilience_for(self, tier: ModelTierSettings) -> ResilienceSettings:
        """Return the policy for a tier: its own override or the global one."""
        return tier.resilience or self.resilience


def production_problems(settings: Settings) -> list[str]:
    """List what makes settings unsafe for production (empty when they are fine)."""
    problems: list[str] = []
    for index, tier in enumerate(settings.llm.tiers):
        if not tier.enabled or tier.kind not in ("anthropic", "openai"):
            continue
        if tier.kind == "openai" and tier.in_house and tier.base_url and tier.api_key is None:
            continue  # a self-hosted OpenAI-compatible server may need no key
        if is_placeholder(tier.api_key):
            problems.append(
                f"llm.tiers[{index}] ({tier.name}): api_key is empty or a placeholder; "
                f"set SLEUTH_LLM__TIERS with a real key or disable the tier"
            )
    if settings.database_url.get_secret_value().startswith("sqlite"):
        problems.append("database_url: production needs PostgreSQL, not SQLite")
    if settings.service.sandbox_cases is not None:
        problems.append("service.sandbox_cases: production investigates the real systems")
    for source in ("zendesk", "intercom", "generic"):
        secret = getattr(settings.service, f"{source}_secret")
        if secret is not None and is_placeholder(secret):
            problems.append(f"service.{source}_secret is a placeholder")
    return problems


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build settings from the environment, a .env file and explicit overrides."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except SettingsError as exc:
        # raised for unreadable values, e.g. malformed JSON in SLEUTH_LLM__TIERS
        raise ConfigurationError(f"invalid settings: {exc}") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigurationError(
            "invalid settings:\n" + "\n".join(lines), errors=len(lines)
        ) from None
