"""``stella``: run the platform locally, serve one service, and look inside."""

from __future__ import annotations

import typer

from stella_services.cli import call, chat, deploy, inspect, models, status, up
from stella_services.registry import SERVICES, UnknownService, get
from stella_services.runtime.lifecycle import run

app = typer.Typer(
    name="stella",
    help="STELLA: real-time voice AI agents. `stella up` runs everything on this machine.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("up")(up.up)
app.command("events")(inspect.events)
app.command("history")(inspect.history)
app.command("query")(inspect.query)
app.command("chat")(chat.chat)
app.command("call")(call.call)
app.command("status")(status.status)
app.add_typer(models.app, name="models")
app.add_typer(deploy.app, name="deploy")


@app.command("serve")
def serve(
    service: str = typer.Argument(..., help=f"one of: {', '.join(sorted(SERVICES))}"),
) -> None:
    """Run one service in the foreground (configured by environment variables)."""
    try:
        spec = get(service)
    except UnknownService as exc:
        raise typer.BadParameter(str(exc), param_hint="SERVICE") from None
    run(spec.create())


if __name__ == "__main__":
    app()
