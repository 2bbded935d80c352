"""Every connector folder is registered, follows the fixed layout, and is read-only by design."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import Connector, ConnectorConfig, Params
from connectors.registry import REGISTRY, DisabledConnector, build_connector
from connectors.settings import ConnectorSettings
from core.domain import SOURCES
from core.settings import ResilienceSettings
from core.telemetry import Metrics

FOLDER = Path(__file__).resolve().parents[2] / "connectors"
WRITE_VERBS = ("create", "update", "delete", "write", "post", "put", "patch", "refund",
               "cancel", "send", "mutate", "insert", "drop", "set", "add", "remove")


def connector_folders() -> list[str]:
    return sorted(p.name for p in FOLDER.iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")))


def test_every_connector_folder_is_registered() -> None:
    assert sorted(REGISTRY) == connector_folders()


def test_the_registry_covers_every_evidence_source() -> None:
    assert set(REGISTRY) == set(SOURCES)


@pytest.mark.parametrize("name", connector_folders())
def test_folder_has_the_fixed_files(name: str) -> None:
    for file in ("__init__.py", "client.py", "config.py", "connector.py"):
        assert (FOLDER / name / file).is_file(), f"connectors/{name}/{file} is missing"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_connector_class_is_complete(name: str) -> None:
    cls = REGISTRY[name]  # type: ignore[index]
    assert issubclass(cls, Connector)
    assert cls.name == name
    assert issubclass(cls.config_model, ConnectorConfig)
    assert cls.operations(), f"{name} has no operations"
    for op_name, op in cls.operations().items():
        assert issubclass(op.params, Params), op_name
        assert op.description, op_name
        # read-only by construction: no operation is named like a write
        assert op_name.split("_")[0] not in WRITE_VERBS, op_name
    assert ConnectorSettings.model_fields[name].annotation is cls.config_model


@pytest.mark.parametrize("name", sorted(REGISTRY))
async def test_missing_settings_give_a_disabled_connector_with_the_reason(name: str) -> None:
    config = REGISTRY[name].config_model()  # type: ignore[index]
    built = build_connector(name, config, resilience=ResilienceSettings(),  # type: ignore[arg-type]
                            metrics=Metrics())
    missing = config.missing()
    if not missing:
        pytest.skip(f"{name} needs no settings to run")
    assert isinstance(built, DisabledConnector)
    assert all(m in built.reason for m in missing)
    result = await built.run(next(iter(REGISTRY[name].operations())), {})  # type: ignore[index]
    assert result.error is not None
    assert result.error.kind == "disabled"
    assert (await built.health()).status == "disabled"


async def test_switched_off_connector_is_disabled() -> None:
    config = REGISTRY["docs"].config_model(enabled=False)
    built = build_connector("docs", config, resilience=ResilienceSettings(), metrics=Metrics())
    assert isinstance(built, DisabledConnector)
    assert built.reason == "disabled in settings"
