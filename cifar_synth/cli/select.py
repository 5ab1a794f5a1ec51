"""`cifar-synth select`: parse options, then hand over to `cifar_synth.selection.select_snapshots`."""

from pathlib import Path
from typing import Annotated

import typer

from cifar_synth.cli._app import app, reporter, user_errors_exit
from cifar_synth.cli._data_options import Dataset
from cifar_synth.selection import DEFAULT_LATENT_STDS, SelectOptions
from cifar_synth.thresholds import DEFAULT_MIN_CONFIDENCES

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
    samples: Annotated[int, typer.Option(
        help="Samples scored per candidate (and per class for each CNN of --spread-by accuracy).")] = DEFAULTS.samples,
    latent_std: Annotated[list[float] | None, typer.Option(
        help=f"Latent standard deviations to try (repeatable). Default: "
             f"{', '.join(f'{std:g}' for std in DEFAULT_LATENT_STDS)}.")] = None,
    spread_by: Annotated[str, typer.Option(
        help="How each class's latent spread is chosen: frechet (closest to the validation slice) or accuracy (what a "
             "CNN trained on the samples of every class scores on it; all classes at once).")] = DEFAULTS.spread_by,
    budget: Annotated[str, typer.Option(help="Budget of the judge CNN: quick, default (classic), thorough or fast.")]
    = DEFAULTS.budget,
    seed: Annotated[int, typer.Option(help="Seed of the judge's training and of the candidates' latents.")]
    = DEFAULTS.seed,
    min_confidence: Annotated[list[float] | None, typer.Option(
        help="Filter thresholds to try for each class (repeatable); searched when every class is selected. Default: "
             f"{', '.join(f'{value:g}' for value in DEFAULT_MIN_CONFIDENCES)}.")] = None,
    filter_search: Annotated[bool, typer.Option(
        help="Search the filter's threshold per class (for `export --filter selected`).")] = True,
    filter_count: Annotated[int, typer.Option(
        help="Filtered samples per class that each threshold's scoring CNN trains on.")] = DEFAULTS.filter_count,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
):
    """Choose each class's snapshot, latent spread and filter threshold on the validation slice; `export` then follows
    the choice."""
    from cifar_synth.selection import select_snapshots

    select_snapshots(SelectOptions(runs_dir=runs, data_path=data, dataset=dataset, classes=tuple(class_names or ()),
                                   samples=samples, latent_stds=tuple(latent_std or DEFAULT_LATENT_STDS),
                                   spread_by=spread_by,
                                   budget=budget, seed=seed, filter_search=filter_search, filter_count=filter_count,
                                   min_confidences=tuple(min_confidence) if min_confidence else None),
                     reporter(quiet))
