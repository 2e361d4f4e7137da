"""``stella deploy``: Kubernetes manifests from agents-config.yaml (nothing is applied)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from stella_services.deploy.config import AgentsConfig, parse_config
from stella_services.deploy.config_file import ConfigError
from stella_services.deploy.manifests import HEADER, render_files, to_yaml

app = typer.Typer(help="Deployment: Kubernetes manifests from agents-config.yaml.")
err = Console(stderr=True, highlight=False)


def _rendered_by_us(path: Path, source: str) -> bool:
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return False
    return first + "\n" == HEADER.format(source=source)


@app.command("render")
def render_command(
    config_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="the agents-config.yaml"
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        file_okay=False,
        help="write platform.yaml and agent-<name>.yaml into this folder; default: stdout",
    ),
) -> None:
    """Check agents-config.yaml and print (or write) the manifests: `kubectl apply -f`."""
    try:
        config = parse_config(config_file.read_text(encoding="utf-8"), config_file.name)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            err.print(f"[red]✗[/] {escape(line)}", soft_wrap=True)
        raise typer.Exit(1) from None
    files = render_files(config)
    if out is None:
        typer.echo(to_yaml([obj for objs in files.values() for obj in objs], config_file.name))
        return
    out.mkdir(parents=True, exist_ok=True)
    # an agent removed from the config must not come back with `kubectl apply -f <out>`
    for stale in sorted(out.glob("agent-*.yaml")):
        if stale.name not in files and _rendered_by_us(stale, config_file.name):
            stale.unlink()
            err.print(f"removed {stale}")
    for name, objects in files.items():
        (out / name).write_text(to_yaml(objects, config_file.name), encoding="utf-8")
        err.print(f"[green]✓[/] {out / name} ({len(objects)} objects)")


def config_schema() -> str:
    """The JSON schema of agents-config.yaml (editors validate with it as you type)."""
    schema = AgentsConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "STELLA agents-config.yaml"
    return json.dumps(schema, indent=2) + "\n"


@app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of agents-config.yaml (deploy/kubernetes/ holds a copy)."""
    typer.echo(config_schema(), nl=False)
