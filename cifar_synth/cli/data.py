"""`cifar-synth data info` and `cifar-synth data fetch`: inspect the real data, download CIFAR-10 or CIFAR-100."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from cifar_synth.cli._app import app, console, user_errors_exit
from cifar_synth.cli._data_options import Data, Dataset

data_app = typer.Typer(help="Inspect or download the real data that train, select and evaluate read.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("info")
@user_errors_exit
def info_command(
    data: Data = None,
    dataset: Dataset = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Show where the real data comes from, which dataset it is, its checksum, and the image count per split and
    class."""
    from cifar_synth.data import open_real_data

    summary = open_real_data(data, dataset=dataset).describe()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for field in ("source", "kind", "dataset", "sha256", "checksum_status"):
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
        "--dest", help="Folder to put the archive (cifar-10-python.tar.gz, cifar-100-python.tar.gz) in. Default: "
                       "datasets/<dataset>/.")] = None,
    dataset: Dataset = None,
):
    """Download the official CIFAR-10 (or CIFAR-100) archive and verify its published checksum (nothing to do if a
    verified copy is there)."""
    from cifar_synth.data import fetch_official

    archive, downloaded = fetch_official(dest, dataset)
    state = "downloaded and verified" if downloaded else "already present and verified"
    console.print(f"[green]{state}:[/] {escape(str(archive))}", highlight=False)
