"""`cifar-synth export`: a labeled synthetic dataset from the trained generators."""

from pathlib import Path
from typing import Annotated

import typer
from rich.filesize import decimal
from rich.table import Table

from cifar_synth.cli._app import app, console, user_errors_exit


@app.command("export")
@user_errors_exit
def export_command(
    runs: Annotated[Path, typer.Option(
        "--runs", metavar="DIR", help="Directory of trained runs, one <class>/ folder each.")] = Path("runs"),
    class_names: Annotated[list[str] | None, typer.Option(
        "--class", metavar="NAME",
        help="Class to export (repeatable, or 'all'); default: every class with a trained generator.")] = None,
    count: Annotated[int, typer.Option("--count", metavar="N", help="Images per class.")] = 5000,
    formats: Annotated[list[str] | None, typer.Option(
        "--format", metavar="FORMAT", help="parquet, images or csv (repeatable); default: parquet.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Output directory; default: datasets/synthetic/<name>.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name of the default output directory; default: <runs dir name>-seed<seed>.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latent vectors: same seed, same images.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images generated and written per step.")] = 256,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing export at the output.")] = False,
):
    """Sample each class's generator and write a labeled dataset (Parquet for pandas and Hugging Face datasets,
    CSV of pixel columns, or a class-folder PNG tree) with a manifest.json that makes every image reproducible."""
    from cifar_synth.exporter import export_dataset

    result = export_dataset(runs_dir=runs, classes=class_names, count=count, formats=formats, out=out, name=name,
                            seed=seed, batch_size=batch_size, overwrite=overwrite)
    console.print(_summary(result.manifest, result.path))


def _summary(manifest: dict, path: Path) -> Table:
    table = Table(title=f"Exported to {path}", title_justify="left")
    for column in ("class", "count", "files", "bytes"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for entry in manifest["classes"]:
        table.add_row(entry["name"], f"{entry['count']:,}", "", "")
    table.add_section()
    for fmt in manifest["formats"]:
        files = [entry for entry in manifest["files"] if entry["format"] == fmt]
        table.add_row(f"{fmt} (all classes)", f"{sum(entry['rows'] for entry in files):,}",
                      f"{sum(entry['files'] for entry in files):,}", decimal(sum(entry["bytes"] for entry in files)))
    return table
