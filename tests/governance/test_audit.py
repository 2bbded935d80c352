"""The tamper-evident audit log on SQLite and PostgreSQL: chain, tampering, concurrency, CLI."""

from __future__ import annotations

import io
import json
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from core.errors import InvalidRequestError
from governance.audit import (
    GENESIS_HASH,
    AuditKind,
    AuditLog,
    AuditUnavailableError,
    verify_lines,
)
from governance.audit_store import AuditRecord, entry_hash
from governance.db import create_all, make_engine
from service.commands.audit_cmd import app
from tests.conftest import postgres_schema

runner = CliRunner()
SECRET = "sk-ant-api03-very-secret-key-material-0123"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield a fresh database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    with postgres_schema(base, "audit_test") as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    return AuditLog(engine)


def fill(log: AuditLog, n: int = 6) -> None:
    for i in range(n):
        log.append(
            AuditKind.CONNECTOR_CALL,
            {"source": "stripe", "operation": "get", "i": i},
            investigation_id=f"inv-{i % 2}",
        )


def tamper(engine: Engine, *statements: str, **params: Any) -> None:
    """Run raw SQL as a superuser would: on PostgreSQL, with the guard triggers bypassed."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            conn.execute(text(statement), params)


def row(engine: Engine, seq: int) -> Any:
    table = AuditRecord.__table__
    with engine.connect() as conn:
        return conn.execute(select(table).where(table.c.seq == seq)).one()


def test_append_chains_entries_and_verifies(log: AuditLog) -> None:
    first = log.append("ticket_received", {"ticket": "T-1"}, investigation_id="inv-a")
    second = log.append(
        "approval", {"action": 0, "approved": True}, investigation_id="inv-a", actor="alice"
    )
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash, second.actor) == (2, first.hash, "alice")
    assert first.at.tzinfo is not None
    assert log.entries() == [first, second]
    assert log.entries(after_seq=1) == [second]
    report = log.verify(batch_size=1)
    assert (report.ok, report.checked, report.head_hash) == (True, 2, second.hash)


def test_empty_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert (report.ok, report.checked, report.head_hash) == (True, 0, GENESIS_HASH)


def test_unreachable_database_raises_a_typed_error() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(AuditUnavailableError) as caught:
        AuditLog(engine).append("ticket_received", {})
    assert caught.value.code == "audit_unavailable"


def test_invalid_appends_are_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidRequestError):
        log.append("Not A Kind", {})
    with pytest.raises(InvalidRequestError):
        log.append("x", ["not", "a", "mapping"])  # type: ignore[arg-type]


def _swap_3_and_4(e: Engine) -> None:
    tamper(
        e,
        "UPDATE audit_entries SET seq = -1 WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
        "UPDATE audit_entries SET seq = 4 WHERE seq = -1",
    )


def _rehash_3(e: Engine) -> None:
    r = row(e, 3)
    forged = entry_hash(r.prev_hash, 3, r.at, r.kind, r.investigation_id, r.actor, '{"i":99}')
    tamper(
        e, "UPDATE audit_entries SET payload = :p, hash = :h WHERE seq = 3", p='{"i":99}', h=forged
    )


def _forge_tail(e: Engine) -> None:
    last = row(e, 6)
    at = datetime.now(UTC)
    forged = entry_hash(last.hash, 7, at, "approval", None, "mallory", "{}")
    tamper(
        e,
        "INSERT INTO audit_entries (seq, at, kind, investigation_id, actor, payload, "
        "prev_hash, hash) VALUES (7, :at, 'approval', NULL, 'mallory', '{}', :p, :h)",
        at=at,
        p=last.hash,
        h=forged,
    )


def _insert_3_and_renumber(e: Engine) -> None:
    before = row(e, 2)
    at = datetime.now(UTC)
    forged = entry_hash(before.hash, 3, at, "approval", None, "mallory", "{}")
    tamper(
        e,
        "UPDATE audit_entries SET seq = seq + 1000 WHERE seq >= 3",
        "UPDATE audit_entries SET seq = seq - 999 WHERE seq >= 1000",
        "INSERT INTO audit_entries (seq, at, kind, investigation_id, actor, payload, "
        "prev_hash, hash) VALUES (3, :at, 'approval', NULL, 'mallory', '{}', :p, :h)",
        at=at,
        p=before.hash,
        h=forged,
    )


def _bad_genesis(e: Engine) -> None:
    r = row(e, 1)
    forged = entry_hash("f" * 64, 1, r.at, r.kind, r.investigation_id, r.actor, r.payload)
    tamper(
        e, "UPDATE audit_entries SET prev_hash = :p, hash = :h WHERE seq = 1", p="f" * 64, h=forged
    )


TAMPERING: dict[str, tuple[Callable[[Engine], None], int, str]] = {
    "payload edited": (
        lambda e: tamper(e, "UPDATE audit_entries SET payload = :p WHERE seq = 3", p='{"i":99}'),
        3,
        "edited",
    ),
    "time edited": (
        lambda e: tamper(
            e,
            "UPDATE audit_entries SET at = :at WHERE seq = 2",
            at=datetime(2020, 1, 1, tzinfo=UTC),
        ),
        2,
        "edited",
    ),
    "edited and re-hashed": (_rehash_3, 3, "edited"),
    "middle deleted": (
        lambda e: tamper(e, "DELETE FROM audit_entries WHERE seq = 3"),
        4,
        "deleted or inserted",
    ),
    "tail deleted": (
        lambda e: tamper(e, "DELETE FROM audit_entries WHERE seq = 6"),
        6,
        "deleted or inserted",
    ),
    "forged entry appended": (_forge_tail, 7, "deleted or inserted"),
    "forged entry inserted": (_insert_3_and_renumber, 3, "deleted or inserted"),
    "rows swapped": (_swap_3_and_4, 3, "reordered"),
    "genesis replaced": (_bad_genesis, 1, "bad genesis"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_detected_and_named(engine: Engine, log: AuditLog, case: str) -> None:
    fill(log)
    assert log.verify().ok
    change, seq, problem = TAMPERING[case]
    change(engine)
    report = log.verify(batch_size=2)
    assert not report.ok
    assert (report.first_broken_seq, report.problem) == (seq, problem), report.detail


def test_export_round_trips_and_verifies_offline(log: AuditLog, tmp_path: Path) -> None:
    fill(log)
    out = io.StringIO()
    assert log.export(out) == 6
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [e.to_json_dict() for e in log.entries()]
    assert verify_lines(lines).ok
    one = io.StringIO()
    assert log.export(one, investigation_id="inv-1") == 3
    assert {json.loads(line)["investigation_id"] for line in one.getvalue().splitlines()} == {
        "inv-1"
    }
    edited = json.loads(lines[2])
    edited["payload"]["i"] = 42
    lines[2] = json.dumps(edited)
    report = verify_lines(lines)
    assert (report.first_broken_seq, report.problem) == (3, "edited")


def test_default_scrub_and_custom_hook_keep_secrets_out(engine: Engine) -> None:
    entry = AuditLog(engine).append(
        "model_call",
        {"tier": "anthropic", "input": f"key is {SECRET}", "api_key": "plain", "input_tokens": 12},
    )
    assert SECRET not in json.dumps(entry.payload)
    assert entry.payload["api_key"] == "[REDACTED]"
    assert entry.payload["input_tokens"] == 12
    odd = AuditLog(engine).append(
        "connector_call",
        {"auth": SecretStr("hunter2"), "when": datetime(2026, 1, 2, tzinfo=UTC), "ids": {3, 1}},
    )
    assert odd.payload == {
        "auth": "[REDACTED]",
        "when": "2026-01-02T00:00:00.000000+00:00",
        "ids": [1, 3],
    }

    def drop_ssn(value: Any) -> Any:
        return {k: v for k, v in value.items() if k != "ssn"}

    AuditLog(engine, scrub=drop_ssn).append("ticket_received", {"ssn": "123-45-6789", "id": 1})
    with engine.connect() as conn:
        stored = " ".join(conn.execute(text("SELECT payload FROM audit_entries")).scalars())
    assert SECRET not in stored
    assert "123-45-6789" not in stored
    assert AuditLog(engine).verify().ok


async def test_aappend_from_async_code(log: AuditLog) -> None:
    entry = await log.aappend("playbooks", {"refund_failed": "1.2.0"}, investigation_id="inv-x")
    assert log.entries(investigation_id="inv-x") == [entry]


def test_concurrent_threads_keep_one_chain(db_url: str, engine: Engine) -> None:
    # a second engine has its own in-process lock, so only the database serialises the two
    other = make_engine(db_url)
    logs = [AuditLog(engine if i % 2 else other) for i in range(8)]

    def write(i: int) -> list[int]:
        return [logs[i].append("connector_call", {"w": i, "n": n}).seq for n in range(25)]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            seqs = [s for batch in pool.map(write, range(8)) for s in batch]
    finally:
        other.dispose()
    assert sorted(seqs) == list(range(1, 201))
    report = logs[1].verify()
    assert (report.ok, report.checked) == (True, 200)


def _append_from_process(url: str, writer: int, count: int) -> None:
    engine = make_engine(url)
    log = AuditLog(engine)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda n: log.append("model_call", {"p": writer, "n": n}), range(count)))
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_processes_keep_one_chain(db_url: str, engine: Engine) -> None:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no engine state shared
    procs = [ctx.Process(target=_append_from_process, args=(db_url, w, 30)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    report = AuditLog(engine).verify()
    assert (report.ok, report.checked) == (True, 60)
    assert {e.payload["p"] for e in AuditLog(engine).entries()} == {0, 1}


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_entries WHERE seq = 2",
        "TRUNCATE audit_entries",
    ],
)
def test_postgres_trigger_refuses_changes(
    db_url: str, engine: Engine, log: AuditLog, statement: str
) -> None:
    assert engine.dialect.name == "postgresql"
    fill(log, 3)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert log.verify().ok


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_dropped_trigger_still_leaves_edit_evident(engine: Engine, log: AuditLog) -> None:
    assert engine.dialect.name == "postgresql"
    fill(log, 4)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entries_append_only ON audit_entries"))
        conn.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    report = log.verify()
    assert (report.first_broken_seq, report.problem) == (2, "edited")


def test_cli_verify_export_and_show(
    db_url: str, engine: Engine, log: AuditLog, tmp_path: Path
) -> None:
    fill(log)
    result = runner.invoke(app, ["verify", "--database", db_url])
    assert result.exit_code == 0, result.output
    assert "6 entries" in result.output
    out = tmp_path / "audit.jsonl"
    result = runner.invoke(app, ["export", "--database", db_url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 6
    assert runner.invoke(app, ["verify", "--file", str(out)]).exit_code == 0
    result = runner.invoke(app, ["export", "--database", db_url, "--investigation", "inv-0"])
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [1, 3, 5]
    result = runner.invoke(app, ["show", "inv-1", "--database", db_url])
    assert result.exit_code == 0, result.output
    assert "connector_call" in result.output
    assert runner.invoke(app, ["show", "nobody", "--database", db_url]).exit_code == 1
    tamper(engine, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3")
    result = runner.invoke(app, ["verify", "--database", db_url])
    assert result.exit_code == 1
    assert "seq 3" in result.output
    assert "edited" in result.output


def test_cli_uses_settings_database_and_reports_missing_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'from-settings.db'}"
    monkeypatch.setenv("SLEUTH_DATABASE_URL", url)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 2
    assert "cannot read the audit log" in result.output
    engine = make_engine(url)
    create_all(engine)
    AuditLog(engine).append("ticket_received", {"ticket": "T-9"}, investigation_id="inv-9")
    engine.dispose()
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "1 entries" in result.output


def test_cli_verify_rejects_a_malformed_export(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"seq": 1}\n')
    result = runner.invoke(app, ["verify", "--file", str(bad)])
    assert result.exit_code == 2
    assert "line 1" in result.output
