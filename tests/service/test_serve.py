"""`Server` and `sleuth serve`: the API under uvicorn with its embedded workers, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from core.settings import Settings
from sandbox.cases import load_case
from service.api.auth import generate_token, write_tokens_file
from service.cli import app
from service.demo_client import ServiceClient, WebhookSecrets, signed_delivery
from service.server import Server
from tests.service.conftest import CASES

TOKEN = generate_token()


@pytest.fixture
def server(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Server]:
    tokens = write_tokens_file(tmp_path / "tokens.yaml",
                               [{"name": "tests", "role": "reader", "token": TOKEN}])
    settings = make_settings(service={"port": 0, "tokens_file": str(tokens)})
    running = Server(settings)
    running.start()
    try:
        yield running
    finally:
        running.stop()


async def test_a_signed_webhook_is_investigated_by_the_embedded_workers(server: Server) -> None:
    assert server.workers and server.url.startswith("http://127.0.0.1:")
    ticket = load_case(CASES / "pub-06-card-declined").case.ticket
    delivery = signed_delivery(ticket, WebhookSecrets.of(server.settings), event_id="serve-1")
    steps: list[str] = []
    async with ServiceClient(server.url, token=TOKEN) as client:
        accepted = await client.deliver(delivery, give_up_after_s=5)
        assert (accepted.status, accepted.duplicate, accepted.attempts) == ("queued", False, 1)
        found = await client.follow(accepted.investigation_id,
                                    on_event=lambda e: steps.append(str(e.get("step"))),
                                    timeout_s=60)
        again = await client.deliver(signed_delivery(
            ticket, WebhookSecrets.of(server.settings), event_id="serve-1"))
    assert found["status"] == "waiting_approval", found
    assert found["root_cause"] == "billing.payment_failed"
    assert found["tier"] == "rules"
    assert found["record"]["ticket_id"] == ticket.id
    assert steps[0] == "worker" and "gather" in steps and steps[-1] == "waiting_approval"
    assert again.duplicate and again.investigation_id == accepted.investigation_id

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        ready = await http.get("/readyz")
        metrics = (await http.get("/metrics")).text
    assert ready.status_code == 200, ready.text
    assert "sleuth_queue_depth 0.0" in metrics
    assert 'sleuth_investigations{status="waiting_approval"} 1.0' in metrics
    # the workers run in a child process (embedded_workers_in=process): their connector and
    # model metrics live there; the API's own (webhooks, queue, investigations) are here
    assert "sleuth_webhooks_received_total{" in metrics


def test_stop_is_prompt_and_frees_the_port(make_settings: Callable[..., Settings]) -> None:
    running = Server(make_settings(service={"port": 0}))
    url = running.start()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    running.stop()
    assert not running.healthy()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)
    # the same port binds again at once (a restart does not wait for TIME_WAIT)
    port = int(url.rsplit(":", 1)[1])
    again = Server(make_settings(service={"port": port}), workers=False)
    assert again.start() == url
    again.stop()


def test_serve_help_lists_its_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--workers", "--no-workers", "--concurrency",
                   "--sandbox-cases"):
        assert option in result.output


def test_serve_refuses_a_port_in_use(make_settings: Callable[..., Settings],
                                     tmp_path: Path) -> None:
    with Server(make_settings(service={"port": 0}), workers=False) as busy:
        port = busy.url.rsplit(":", 1)[1]
        result = CliRunner().invoke(app, ["serve", "--port", port, "--no-workers"],
                                    env={"SLEUTH_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
