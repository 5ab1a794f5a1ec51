"""`cifar-synth show`: a per-class sample sheet (a PNG) of a runs directory or of a synthetic dataset."""

from pathlib import Path
from typing import Annotated

import typer

from cifar_synth.cli._app import app, console, user_errors_exit
from cifar_synth.errors import UserError


@app.command("show")
@user_errors_exit
def show_command(
    source: Annotated[Path, typer.Argument(
        help="A runs directory (samples its generators) or a dataset: an export, a .parquet/.csv file or a "
             "class-folder tree (shows its first images).")] = Path("runs"),
    count: Annotated[int, typer.Option("--count", metavar="N", help="Images per class.")] = 10,
    class_names: Annotated[list[str] | None, typer.Option(
        "--class", metavar="NAME", help="Class to show (repeatable, case-insensitive); default: every class, one "
                                        "row each (a sheet of CIFAR-100 is 100 rows tall).")] = None,
    out: Annotated[Path, typer.Option("--out", metavar="PNG", help="Where to write the sheet.")] = Path(
        "samples.png"),
    seed: Annotated[int, typer.Option(
        "--seed", help="Latent seed for a runs directory: the images an export with this seed starts with.")] = 0,
):
    """Write a sample sheet: one labelled row of N images per class, as in an export's dataset card."""
    from cifar_synth.sheet import sample_rows, save_sample_sheet

    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    rows = sample_rows(source, count, seed, tuple(class_names or ()))
    if not rows:
        raise UserError(f"{source} has no images of {', '.join(class_names or ())}")
    save_sample_sheet(out, rows)
    console.print(f"Wrote {out}: {len(rows)} classes × up to {count} images", highlight=False)
