"""`cifar-synth data info` and `cifar-synth data fetch`: inspect and download the real CIFAR-10."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from cifar_synth.cli._app import app, console, user_errors_exit

data_app = typer.Typer(help="Inspect or download the real CIFAR-10 that train and evaluate read.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("info")
@user_errors_exit
def info_command(
    data: Annotated[Path | None, typer.Option(
        "--data", help="CIFAR-10 archive, batches folder or class-folder tree. "
                       "Default: env CIFAR_SYNTH_DATA, else datasets/cifar10/ (downloaded if absent).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Show where the real CIFAR-10 comes from, its checksum, and the image count per split and class."""
    from cifar_synth.data import open_real_data

    summary = open_real_data(data).describe()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for field in ("source", "kind", "sha256", "checksum_status"):
        console.print(f"[bold]{field.replace('_', ' '):<16}[/]{escape(summary[field])}", highlight=False)
    counts = summary["counts"]
    table = Table("class", *(Column(split, justify="right") for split in counts), title="images per split and class")
    for name in counts["train"]:
        table.add_row(name, *(str(counts[split][name]) for split in counts))
    table.add_section()
    table.add_row("total", *(str(sum(per_class.values())) for per_class in counts.values()), style="bold")
    console.print(table)


@data_app.command("fetch")
@user_errors_exit
def fetch_command(
    dest: Annotated[Path | None, typer.Option(
        "--dest", help="Folder to put cifar-10-python.tar.gz in. Default: datasets/cifar10/.")] = None,
):
    """Download the official CIFAR-10 archive and verify its sha256 (nothing to do if a verified copy is there)."""
    from cifar_synth.data import DEFAULT_DIR, fetch_official

    archive, downloaded = fetch_official(DEFAULT_DIR if dest is None else dest)
    state = "downloaded and verified" if downloaded else "already present and verified"
    console.print(f"[green]{state}:[/] {escape(str(archive))}", highlight=False)
