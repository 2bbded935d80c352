"""Tests of core.settings: defaults, environment and .env, secrets, production safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import (
    LLMSettings,
    ModelTierSettings,
    Profile,
    Settings,
    is_placeholder,
    load_settings,
)

ANTHROPIC_KEY = "sk-ant-api03-Zq8wL2mN4pR6tV8xB1cD3fG5hJ7kL9mN0pQ2rS4tU6vW8xY0z"
OPENAI_KEY = "sk-proj-4fT9gH2jK5lM8nP1qR3sT6uV9wX2yZ5aB8cD1eF4gH7jK0"
POSTGRES = "postgresql://sleuth:pg-Pa55w0rd-Q7@db.internal:5432/sleuth"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test without SLEUTH_* variables and in an empty directory (no stray .env)."""
    for key in list(os.environ):
        if key.upper().startswith("SLEUTH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def real_tiers(**extra: Any) -> list[dict[str, Any]]:
    """Return anthropic and openai tiers with real-looking keys."""
    return [
        {"name": "anthropic", "kind": "anthropic", "model": "claude-sonnet-4-5",
         "api_key": ANTHROPIC_KEY, **extra},
        {"name": "openai", "kind": "openai", "model": "gpt-4.1", "api_key": OPENAI_KEY},
        {"name": "rules", "kind": "rules"},
        {"name": "human", "kind": "human"},
    ]


def production(tiers: list[dict[str, Any]], database_url: str = POSTGRES) -> Settings:
    return load_settings(None, profile="production", database_url=database_url,
                         llm={"tiers": tiers})


# --- defaults -----------------------------------------------------------------------------------


def test_defaults_without_environment() -> None:
    settings = load_settings(None)
    assert settings.profile is Profile.DEV
    assert settings.data_dir == Path("var")
    assert settings.database_url.get_secret_value() == "sqlite:///var/sleuth.db"
    assert settings.redis_url is None
    assert settings.breaker_backend == "memory"
    retry = settings.resilience.retry
    assert (retry.max_attempts, retry.initial_backoff_s, retry.max_backoff_s, retry.jitter_s) == (
        3, 0.2, 5.0, 0.2)
    timeouts = settings.resilience.timeouts
    assert (timeouts.connect_s, timeouts.response_s, timeouts.total_budget_s,
            timeouts.stream_stall_s) == (2.0, 30.0, 60.0, 10.0)
    breaker = settings.resilience.breaker
    assert (breaker.failure_threshold, breaker.failure_rate_threshold, breaker.window_size,
            breaker.min_calls, breaker.cooldown_s, breaker.probe_timeout_s) == (
        5, 0.5, 20, 10, 30.0, 60.0)
    assert [t.name for t in settings.llm.tiers] == ["anthropic", "openai", "rules", "human"]
    assert [t.kind for t in settings.llm.tiers] == ["anthropic", "openai", "rules", "human"]
    assert all(t.api_key is None for t in settings.llm.tiers)
    # every default cloud tier has a price
    for name in ("anthropic", "openai"):
        price = settings.llm.prices[settings.tier(name).model]
        assert price.input > 0
        assert price.output > price.input
    assert settings.telemetry.log_level == "INFO"
    assert settings.telemetry.log_json is True


def test_settings_are_frozen() -> None:
    settings = load_settings(None)
    with pytest.raises(ValueError, match="frozen"):
        settings.profile = Profile.PRODUCTION  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        settings.resilience.retry.max_attempts = 9  # type: ignore[misc]


def test_tier_lookup_and_resilience_override() -> None:
    override = {"retry": {"max_attempts": 7}}
    settings = load_settings(None, llm={"tiers": [
        {"name": "a", "kind": "rules", "resilience": override}, {"name": "b", "kind": "human"}]})
    assert settings.resilience_for(settings.tier("a")).retry.max_attempts == 7
    assert settings.resilience_for(settings.tier("b")) is settings.resilience
    with pytest.raises(KeyError):
        settings.tier("missing")


def test_keeps_data_in_house() -> None:
    assert ModelTierSettings(name="r", kind="rules").keeps_data_in_house
    assert ModelTierSettings(name="h", kind="human").keeps_data_in_house
    assert not ModelTierSettings(name="a", kind="anthropic", model="m").keeps_data_in_house
    assert ModelTierSettings(name="o", kind="openai", model="m", in_house=True).keeps_data_in_house


def test_cloud_tier_needs_a_model() -> None:
    with pytest.raises(ConfigurationError, match="needs a model"):
        load_settings(None, llm={"tiers": [{"name": "a", "kind": "anthropic"}]})


@pytest.mark.parametrize("name", ["Upper", "has space", "", "-lead", "x" * 41])
def test_tier_names_are_restricted(name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"llm\.tiers\.0\.name"):
        load_settings(None, llm={"tiers": [{"name": name, "kind": "rules"}]})


# --- environment --------------------------------------------------------------------------------


def test_environment_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEUTH_PROFILE", "test")
    monkeypatch.setenv("SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS", "4")
    monkeypatch.setenv("SLEUTH_RESILIENCE__BREAKER__COOLDOWN_S", "12.5")
    monkeypatch.setenv("SLEUTH_TELEMETRY__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SLEUTH_DATA_DIR", "/srv/sleuth")
    settings = load_settings(None)
    assert settings.profile is Profile.TEST
    assert settings.resilience.retry.max_attempts == 4
    assert settings.resilience.breaker.cooldown_s == 12.5
    assert settings.telemetry.log_level == "DEBUG"
    assert settings.data_dir == Path("/srv/sleuth")
    # fields not given keep their defaults
    assert settings.resilience.retry.initial_backoff_s == 0.2
    assert settings.resilience.timeouts.total_budget_s == 60.0
    assert settings.resilience.breaker.failure_threshold == 5


def test_environment_without_prefix_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE", "production")
    monkeypatch.setenv("RESILIENCE__RETRY__MAX_ATTEMPTS", "9")
    settings = load_settings(None)
    assert settings.profile is Profile.DEV
    assert settings.resilience.retry.max_attempts == 3


def test_tiers_from_json_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = [
        {"name": "primary", "kind": "anthropic", "model": "claude-haiku-4-5",
         "api_key": ANTHROPIC_KEY, "max_tokens": 512},
        {"name": "local", "kind": "openai", "model": "llama", "base_url": "http://10.0.0.5/v1",
         "in_house": True},
        {"name": "rules", "kind": "rules"},
    ]
    monkeypatch.setenv("SLEUTH_LLM__TIERS", json.dumps(tiers))
    settings = load_settings(None)
    assert [t.name for t in settings.llm.tiers] == ["primary", "local", "rules"]
    primary = settings.tier("primary")
    assert isinstance(primary.api_key, SecretStr)
    assert primary.api_key.get_secret_value() == ANTHROPIC_KEY
    assert primary.max_tokens == 512
    assert settings.tier("local").base_url == "http://10.0.0.5/v1"
    assert settings.tier("local").keeps_data_in_house
    # prices were not given: defaults survive
    assert "gpt-4.1" in settings.llm.prices


def test_invalid_environment_value_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigurationError) as info:
        load_settings(None)
    assert "resilience.retry.max_attempts" in str(info.value)
    assert info.value.details["errors"] == 1


def test_malformed_json_tiers_raise_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEUTH_LLM__TIERS", "[{not json")
    with pytest.raises(ConfigurationError, match="llm"):
        load_settings(None)


def test_explicit_overrides_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEUTH_PROFILE", "test")
    assert load_settings(None, profile="dev").profile is Profile.DEV


# --- .env file ----------------------------------------------------------------------------------


def test_env_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / "custom.env"
    env.write_text(
        "SLEUTH_PROFILE=test\n"
        "SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS=7\n"
        "SLEUTH_REDIS_URL=redis://:r3dis-pw@cache:6379/0\n",
        encoding="utf-8",
    )
    settings = load_settings(env)
    assert settings.profile is Profile.TEST
    assert settings.resilience.retry.max_attempts == 7
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == "redis://:r3dis-pw@cache:6379/0"


def test_default_env_file_is_dot_env_in_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLEUTH_PROFILE=test\n", encoding="utf-8")
    assert load_settings().profile is Profile.TEST
    assert load_settings(None).profile is Profile.DEV  # None means: no file


def test_environment_beats_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS=7\n", encoding="utf-8")
    monkeypatch.setenv("SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS", "2")
    assert load_settings(env).resilience.retry.max_attempts == 2


def test_unknown_key_in_env_file_is_refused(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("SLEUTH_PROFLE=production\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="sleuth_profle"):
        load_settings(env)


def test_missing_env_file_is_fine(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "nope.env").profile is Profile.DEV


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_are_secretstr_and_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    redis_secret = "redis://:r3dis-Pa55-Q9@cache:6379/0"
    monkeypatch.setenv("SLEUTH_REDIS_URL", redis_secret)
    settings = load_settings(None, database_url=POSTGRES, llm={"tiers": real_tiers()})
    assert isinstance(settings.database_url, SecretStr)
    assert isinstance(settings.redis_url, SecretStr)
    anthropic = settings.tier("anthropic")
    assert isinstance(anthropic.api_key, SecretStr)
    assert anthropic.api_key.get_secret_value() == ANTHROPIC_KEY

    secrets = [ANTHROPIC_KEY, OPENAI_KEY, POSTGRES, redis_secret, "pg-Pa55w0rd-Q7", "r3dis-Pa55"]
    renderings = {
        "repr": repr(settings),
        "str": str(settings),
        "json": settings.model_dump_json(),
        "tier repr": repr(anthropic),
        "llm repr": repr(settings.llm),
        "dump": str(settings.model_dump()),
    }
    for where, text in renderings.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:12]}... leaks through {where}"
    assert "**********" in renderings["json"]
    assert "**********" in renderings["repr"]
    dumped = json.loads(renderings["json"])
    assert dumped["database_url"] == "**********"
    assert dumped["llm"]["tiers"][0]["api_key"] == "**********"


def test_configuration_error_does_not_echo_secrets() -> None:
    with pytest.raises(ConfigurationError) as info:
        production(real_tiers(), database_url="sqlite:///s3cret-file-name.db")
    assert ANTHROPIC_KEY not in str(info.value)
    assert OPENAI_KEY not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(None, llm={"tiers": [
            {"name": "BAD NAME", "kind": "anthropic", "model": "m", "api_key": ANTHROPIC_KEY}]})
    assert ANTHROPIC_KEY not in str(info.value)


# --- production ---------------------------------------------------------------------------------


def test_production_accepts_real_keys_and_postgres() -> None:
    settings = production(real_tiers())
    assert settings.profile is Profile.PRODUCTION
    assert settings.tier("openai").api_key is not None


def test_production_refuses_default_settings_naming_each_tier() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(None, profile="production")
    message = str(info.value)
    assert "(anthropic)" in message
    assert "(openai)" in message
    assert "api_key" in message
    assert "PostgreSQL" in message
    assert "(rules)" not in message


@pytest.mark.parametrize(
    "key",
    [None, "", "   ", "changeme", "CHANGEME", "change-me", "sk-...", "sk-ant-...", "<your key>",
     "<ANTHROPIC_API_KEY>", "xxx", "XXXXXXXX", "your-api-key", "YOUR_API_KEY", "placeholder",
     "${ANTHROPIC_API_KEY}", "{{ anthropic_key }}", "sk-xxxx", "sk_test_xxx", "dummy", "todo",
     "...", "***"],
)
def test_production_refuses_missing_or_placeholder_key(key: str | None) -> None:
    tiers = real_tiers()
    tiers[0] = {"name": "claude-main", "kind": "anthropic", "model": "claude-sonnet-4-5",
                "api_key": key}
    with pytest.raises(ConfigurationError) as info:
        production(tiers)
    message = str(info.value)
    assert "claude-main" in message
    assert "llm.tiers[0]" in message
    assert "placeholder" in message
    assert "(openai)" not in message  # the openai tier has a real key


@pytest.mark.parametrize("key", ["changeme", "sk-...", "xxx", None])
def test_production_refuses_placeholder_on_openai_tier(key: str | None) -> None:
    tiers = real_tiers()
    tiers[1] = {"name": "gpt", "kind": "openai", "model": "gpt-4.1", "api_key": key}
    with pytest.raises(ConfigurationError, match=r"llm\.tiers\[1\] \(gpt\)"):
        production(tiers)


@pytest.mark.parametrize("key", ["sk-ant-api03-...", "sk-proj-..."])
def test_production_refuses_vendor_sample_keys(key: str) -> None:
    tiers = real_tiers()
    tiers[0]["api_key"] = key
    with pytest.raises(ConfigurationError, match=r"\(anthropic\)"):
        production(tiers)


@pytest.mark.parametrize("key", [ANTHROPIC_KEY, OPENAI_KEY, "sk-test-9fJ2kL4mN6pQ8rS0",
                                 "testing-key-0a9b8c7d6e5f"])
def test_is_placeholder_accepts_real_looking_keys(key: str) -> None:
    assert not is_placeholder(SecretStr(key))


def test_production_ignores_disabled_and_non_cloud_tiers() -> None:
    tiers = [
        {"name": "anthropic", "kind": "anthropic", "model": "m", "enabled": False},
        {"name": "rules", "kind": "rules"},
        {"name": "human", "kind": "human"},
    ]
    assert production(tiers).tier("anthropic").api_key is None


@pytest.mark.parametrize(
    "url", ["sqlite:///var/sleuth.db", "sqlite+aiosqlite:///x.db", "sqlite://"]
)
def test_production_refuses_sqlite(url: str) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL") as info:
        production(real_tiers(), database_url=url)
    assert "database_url" in str(info.value)
    assert "api_key" not in str(info.value)


def test_sqlite_is_fine_outside_production() -> None:
    load_settings(None, profile="test", llm={"tiers": real_tiers()})
    load_settings(None, profile="dev")


def test_production_accepts_in_house_openai_tier_without_key() -> None:
    tiers = [
        {"name": "local", "kind": "openai", "model": "llama-3", "in_house": True,
         "base_url": "http://10.1.2.3:8000/v1"},
        {"name": "rules", "kind": "rules"},
    ]
    assert production(tiers).tier("local").api_key is None


@pytest.mark.parametrize(
    "tier",
    [
        # in house but no base_url: it would go to the vendor
        {"name": "local", "kind": "openai", "model": "m", "in_house": True},
        # a base_url but not in house
        {"name": "local", "kind": "openai", "model": "m", "base_url": "http://proxy/v1"},
        # anthropic is never exempt
        {"name": "local", "kind": "anthropic", "model": "m", "in_house": True,
         "base_url": "http://proxy"},
        # in house with a placeholder key is still a placeholder
        {"name": "local", "kind": "openai", "model": "m", "in_house": True,
         "base_url": "http://10.1.2.3/v1", "api_key": "changeme"},
    ],
)
def test_production_keyless_exemption_is_narrow(tier: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"\(local\)"):
        production([tier])


def test_duplicate_tier_names_are_refused() -> None:
    tiers = [{"name": "rules", "kind": "rules"}, {"name": "x", "kind": "human"},
             {"name": "rules", "kind": "human"}]
    with pytest.raises(ConfigurationError, match="unique; repeated: rules"):
        load_settings(None, llm={"tiers": tiers})
    with pytest.raises(ValueError, match="repeated: rules"):
        LLMSettings(tiers=tiers)  # type: ignore[arg-type]


def test_duplicate_tier_names_from_environment_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLEUTH_LLM__TIERS", json.dumps(
        [{"name": "h", "kind": "human"}, {"name": "h", "kind": "rules"}]))
    with pytest.raises(ConfigurationError, match="repeated: h"):
        load_settings(None)


def test_redis_breaker_backend_needs_redis_url() -> None:
    with pytest.raises(ConfigurationError, match="SLEUTH_REDIS_URL"):
        load_settings(None, breaker_backend="redis")
    settings = load_settings(None, breaker_backend="redis", redis_url="redis://cache:6379/0")
    assert settings.breaker_backend == "redis"


def test_breaker_min_calls_larger_than_window_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="min_calls"):
        load_settings(None, resilience={"breaker": {"window_size": 5, "min_calls": 10}})


def test_unknown_breaker_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="breaker_backend"):
        load_settings(None, breaker_backend="etcd")


# --- nothing at import time ---------------------------------------------------------------------


def test_import_does_not_read_the_environment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SLEUTH_")}
    env["SLEUTH_RESILIENCE__RETRY__MAX_ATTEMPTS"] = "not-a-number"
    env["SLEUTH_PROFILE"] = "production"
    (tmp_path / ".env").write_text("SLEUTH_BREAKER_BACKEND=nonsense\n", encoding="utf-8")

    imported = subprocess.run(
        [sys.executable, "-c", "import core.settings, core.resilience, core.errors; print('ok')"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "ok"

    loaded = subprocess.run(
        [sys.executable, "-c",
         "from core.settings import load_settings\n"
         "from core.errors import ConfigurationError\n"
         "try:\n"
         "    load_settings(None)\n"
         "except ConfigurationError as exc:\n"
         "    print('refused:', exc)\n"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "refused:" in loaded.stdout
    assert "resilience.retry.max_attempts" in loaded.stdout
