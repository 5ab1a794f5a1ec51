"""`cifar-synth audit`: which synthetic images are (near) copies of the real images their generators trained on."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cifar_synth.cli._app import app, console, reporter, user_errors_exit
from cifar_synth.cli._data_options import Data, Dataset
from cifar_synth.report import number, percent


@app.command("audit")
@user_errors_exit
def audit_command(
    synthetic: Annotated[Path, typer.Argument(
        help="Synthetic dataset: an export directory, a .parquet/.csv file or a class-folder tree.")],
    data: Data = None,
    dataset: Dataset = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where audit.json, closest_pairs.csv and closest_pairs.png go. Default: "
                      "reports/<synthetic name>/audit.")] = None,
    validation_fraction: Annotated[float | None, typer.Option(
        "--validation-fraction", help="The share of each class's training images its generator held out. Default: "
                                      "the export's manifest's, else 0.1.")] = None,
    false_flag_rate: Annotated[float, typer.Option(
        "--false-flag-rate", help="Each space's threshold is this quantile of the validation images' distances to "
                                  "the training images.")] = 0.001,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="The cache whose audit/ folder keeps the audit CNN, as evaluate's --cache-dir. Default: "
                            "~/.cache/cifar-synth/evaluator.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress and no summary table.")] = False,
):
    """Find synthetic images that copy training images (pixels, mirrored too, and a CNN's features), calibrated on
    the validation slice; with precision, recall, density and coverage per class."""
    from cifar_synth.audit import AuditOptions, audit_synthetic, default_out_dir

    out = out if out is not None else default_out_dir(synthetic)
    audit = audit_synthetic(synthetic, AuditOptions(data_path=data, dataset=dataset, out_dir=out,
                                                    validation_fraction=validation_fraction,
                                                    false_flag_rate=false_flag_rate, cache_dir=cache_dir),
                            reporter(quiet))
    if not quiet:
        console.print(summary_table(audit))
        console.print(f"Audit: {out}/ (audit.json, closest_pairs.csv, closest_pairs.png)")


def summary_table(audit: dict) -> Table:
    """Per class: flagged share against V's, exact copies, nearest-in-T excess, Z_U and PRDC."""
    thresholds = audit["thresholds"]
    table = Table(title=f"Copy audit: flagged when closer to a training image than "
                        f"{thresholds['false_flag_rate']:.1%} of validation images are (pixels ℓ2 "
                        f"{thresholds['pixel_l2']:.2f}, features cosine {thresholds['feature_cosine']:.3f}), or exact")
    for column in ("class", "flagged", "flagged %", "V flagged %", "exact", "T excess", "Z_U", "precision",
                   "recall", "density", "coverage"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, figures in audit["classes"].items():
        if figures is None:
            continue
        prdc = figures["prdc"] or {}
        table.add_row(name, f"{figures['flagged']:,}", percent(figures["flagged_share"]),
                      percent(figures["validation"]["flagged_share"]), f"{figures['exact_copies']:,}",
                      number(figures["feature"]["nearest_in_train_excess"]), number(figures["feature"]["z_u"], 1),
                      *(number(prdc.get(key)) for key in ("precision", "recall", "density", "coverage")))
    overall = audit["overall"]
    table.add_row("[bold]all", f"[bold]{overall['flagged']:,}", f"[bold]{percent(overall['flagged_share'])}",
                  percent(overall["validation_flagged_share"]), f"{overall['exact_copies']:,}", "",
                  f"C_T {number(overall['c_t_feature'], 1)}", end_section=True)
    return table
