"""`cifar-synth export`: a labeled synthetic dataset, ready for the Hugging Face Hub, from the trained generators."""

from pathlib import Path
from typing import Annotated

import typer
from rich.filesize import decimal
from rich.table import Table

from cifar_synth.cli._app import app, console, reporter, user_errors_exit
from cifar_synth.cli._data_options import Data
from cifar_synth.exporter import ExportOptions
from cifar_synth.filtering import baseline_text

EXPORT_DEFAULTS = ExportOptions()


@app.command("export")
@user_errors_exit
def export_command(
    runs: Annotated[Path, typer.Option(
        "--runs", metavar="DIR", help="Directory of trained runs, one <class>/ folder each.")] = Path("runs"),
    class_names: Annotated[list[str] | None, typer.Option(
        "--class", metavar="NAME",
        help="Class to export (repeatable, or 'all'); default: every class with a trained generator.")] = None,
    count: Annotated[int, typer.Option("--count", metavar="N", help="Images per class.")] = EXPORT_DEFAULTS.count,
    formats: Annotated[list[str] | None, typer.Option(
        "--format", metavar="FORMAT", help="parquet, images or csv (repeatable); default: parquet.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Output directory; default: datasets/synthetic/<name>.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name of the default output directory; default: <runs dir name>-seed<seed>.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latent vectors: same seed, same images.")] = 0,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Images per generator call; bounds memory.")] = EXPORT_DEFAULTS.batch_size,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing export at the output.")] = False,
    filter_by: Annotated[str, typer.Option(
        "--filter", metavar="none|classifier|selected|discriminator",
        help="classifier: keep only images a real-trained CNN recognises as their class; selected: the same with the "
             "judge and per-class thresholds `cifar-synth select` chose on the validation slice; discriminator: "
             "discriminator rejection sampling with each class's own GAN discriminator (needs the run's "
             "checkpoint).")] = "none",
    classifier: Annotated[Path | None, typer.Option(
        "--classifier", metavar="PATH",
        help="Keras classifier for --filter classifier; default: the evaluator's cached real-trained one.")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        "--min-confidence", metavar="P",
        help="Keep an image when the classifier's top class is its class with probability >= P "
             "(0: top class only). Default: 0.5.")] = None,
    selection: Annotated[bool, typer.Option(
        help="Sample each class from the snapshot and latent spread `cifar-synth select` chose on the validation "
             "slice, where it has one; --no-selection takes the final generator.")] = True,
    license_id: Annotated[str, typer.Option(
        "--license", metavar="ID",
        help="Licence of the data in the card's front matter: an identifier such as cc-by-4.0, or other, or unknown "
             "(the card explains what is known of CIFAR-10's terms).")] = "unknown",
    exclude_copies: Annotated[bool, typer.Option(
        "--exclude-copies", help="Drop the candidates `cifar-synth audit` would flag as copies of a real training "
                                 "image, against the real data the generators trained on (--data).")] = False,
    data: Data = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar and no summary table.")] = False,
):
    """Sample each class's generator into a labeled dataset that is also a Hugging Face dataset repository: a card
    (README.md), Parquet shards in data/ (or a CSV of pixel columns, or a class-folder PNG tree) and a
    manifest.json that makes every image reproducible."""
    from cifar_synth.exporter import export_dataset

    options = ExportOptions(
        runs_dir=runs, classes=tuple(class_names) if class_names else None, count=count,
        formats=tuple(formats) if formats else ("parquet",), out=out, name=name, seed=seed, batch_size=batch_size,
        overwrite=overwrite, filter_by=filter_by, classifier=classifier, min_confidence=min_confidence,
        license=license_id, use_selection=selection, exclude_copies=exclude_copies, data_path=data)
    result = export_dataset(options, reporter(quiet))
    if not quiet:
        console.print(_summary(result.manifest, result.path))
        if "copies" in result.manifest["filter"]:
            excluded = result.manifest["filter"]["copies"]["excluded"]
            console.print(f"Excluded {sum(excluded.values()):,} candidates as copies of training images: "
                          + ", ".join(f"{name} {count:,}" for name, count in excluded.items()))


def _summary(manifest: dict, path: Path) -> Table:
    filtered = manifest["filter"]["method"] != "none"
    caption = _filter_caption(manifest["filter"]) if filtered else None
    table = Table(title=f"Exported to {path}", title_justify="left", caption=caption, caption_justify="left")
    columns = ("class", "count", *(["accepted %"] if filtered else []), "files", "bytes")
    for column in columns:
        table.add_column(column, justify="left" if column == "class" else "right")
    for entry in manifest["classes"]:
        accepted = [f"{entry['filter']['acceptance_rate']:.1%}"] if filtered else []
        table.add_row(entry["name"], f"{entry['count']:,}", *accepted, "", "")
    table.add_section()
    for fmt in manifest["formats"]:
        files = [entry for entry in manifest["files"] if entry["format"] == fmt]
        table.add_row(f"{fmt} (all classes)", f"{sum(entry['rows'] for entry in files):,}", *([""] if filtered else []),
                      f"{sum(entry['files'] for entry in files):,}", decimal(sum(entry["bytes"] for entry in files)))
    return table


def _filter_caption(method: dict) -> str:
    if method["method"] == "discriminator":
        return "filtered by discriminator rejection sampling with each class's own discriminator"
    thresholds = ("min confidence per class as `select` chose it" if method.get("min_confidence_per_class") else
                  f"min confidence {method.get('min_confidence') or 0:g}")
    figures = f" ({baseline_text(method['classifier']['baseline'])})" if method["classifier"].get("baseline") else ""
    return f"filtered with classifier {method['classifier']['path']}{figures}, {thresholds}"
