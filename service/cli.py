"""The `sleuth` command line."""

from __future__ import annotations

import typer

from service.commands import (
    approvals_cmd,
    audit_cmd,
    config_cmd,
    connectors_cmd,
    console_cmd,
    demo_cmd,
    eval_cmd,
    investigate_cmd,
    playbooks_cmd,
    serve_cmd,
    worker_cmd,
)

app = typer.Typer(
    name="sleuth",
    help="Investigates customer support tickets like a senior support engineer.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("demo")(demo_cmd.demo)
app.command("gateway-demo")(demo_cmd.gateway_demo)
app.command("investigate")(investigate_cmd.investigate)
app.command("serve")(serve_cmd.serve)
app.command("worker")(worker_cmd.worker)
app.command("console")(console_cmd.console)
app.add_typer(connectors_cmd.app, name="connectors")
app.add_typer(playbooks_cmd.app, name="playbooks")
app.add_typer(approvals_cmd.app, name="approvals")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(config_cmd.app, name="config")


def main() -> None:
    """Run the command line."""
    app()
