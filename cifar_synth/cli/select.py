"""`cifar-synth select`: parse options, then hand over to `cifar_synth.selection.select_snapshots`."""

from pathlib import Path
from typing import Annotated

import typer

from cifar_synth.cli._app import app, reporter, user_errors_exit
from cifar_synth.cli._data_options import Dataset
from cifar_synth.selection import DEFAULT_LATENT_STDS, SelectOptions

DEFAULTS = SelectOptions()


@app.command("select")
@user_errors_exit
def select_command(
    class_names: Annotated[list[str] | None, typer.Option(
        "--class", help="Class to select for (repeatable, or 'all'). Default: every trained class.")] = None,
    runs: Annotated[Path, typer.Option(help="Directory holding one run directory per class.")] = DEFAULTS.runs_dir,
    data: Annotated[Path | None, typer.Option(
        help="The real data the runs trained on (its validation slice is read, never its test split).")] = None,
    dataset: Dataset = None,
    samples: Annotated[int, typer.Option(help="Samples scored per candidate.")] = DEFAULTS.samples,
    latent_std: Annotated[list[float] | None, typer.Option(
        help=f"Latent standard deviations to try (repeatable). Default: "
             f"{', '.join(f'{std:g}' for std in DEFAULT_LATENT_STDS)}.")] = None,
    budget: Annotated[str, typer.Option(help="Budget of the judge CNN: quick, default or thorough.")]
    = DEFAULTS.budget,
    seed: Annotated[int, typer.Option(help="Seed of the judge's training and of the candidates' latents.")]
    = DEFAULTS.seed,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
):
    """Choose each class's snapshot and latent spread on the validation slice; `export` then follows the choice."""
    from cifar_synth.selection import select_snapshots

    select_snapshots(SelectOptions(runs_dir=runs, data_path=data, dataset=dataset, classes=tuple(class_names or ()),
                                   samples=samples, latent_stds=tuple(latent_std or DEFAULT_LATENT_STDS),
                                   budget=budget, seed=seed),
                     reporter(quiet))
