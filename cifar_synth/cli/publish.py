"""`cifar-synth publish`: an export to the Hugging Face Hub as a dataset repository."""

from pathlib import Path
from typing import Annotated

import typer

from cifar_synth.cli._app import app, console, user_errors_exit


@app.command("publish")
@user_errors_exit
def publish_command(
    export: Annotated[Path, typer.Argument(help="The export folder (it holds README.md and manifest.json).")],
    repo: Annotated[str, typer.Option("--repo", metavar="USER/NAME", help="Dataset repository on the Hub.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    license_id: Annotated[str | None, typer.Option(
        "--license", metavar="ID",
        help="Give the export this licence first (its card and manifest, in the folder too): an identifier such "
             "as cc-by-4.0, or other, or unknown. Default: the one it was exported with.")] = None,
):
    """Upload an export to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`); needs cifar-synth\\[hub]."""
    from cifar_synth.hub import publish_export

    url = publish_export(export, repo, private=private, license_id=license_id)
    console.print(f"[green]Published[/] {export} to {url}", highlight=False)
