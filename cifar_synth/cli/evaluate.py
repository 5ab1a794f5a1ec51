"""`cifar-synth evaluate`: train the judges on real and on synthetic images, test them on real ones, report."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cifar_synth.judge_names import JUDGE_NAMES
from cifar_synth.cli._app import app, console, reporter, user_errors_exit
from cifar_synth.cli._data_options import Dataset
from cifar_synth.cli._executor_options import DEFAULTS as EXECUTOR_DEFAULTS, EVALUATE
from cifar_synth.report import number, percent

if TYPE_CHECKING:
    from cifar_synth.report import Report


@app.command("evaluate")
@user_errors_exit
def evaluate_command(
    synthetic: Annotated[Path, typer.Option(
        "--synthetic", help="Synthetic dataset: an export directory, a .parquet/.csv file or a class-folder tree.")],
    data: Annotated[str | None, typer.Option(
        "--data", help="The real data of the synthetic data's classes (an official archive, its folder or a "
                       "class-folder tree). Default: $CIFAR_SYNTH_DATA, else datasets/<dataset>/.")] = None,
    dataset: Dataset = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Report directory. Default: reports/<synthetic name>.")] = None,
    budget: Annotated[str, typer.Option(
        "--budget", help="Judges' preset: quick, default (also named classic), thorough, or fast (4× faster, "
                         "bfloat16; its figures are not comparable with the others': see docs/evaluate.md).")
    ] = "default",
    epochs: Annotated[int | None, typer.Option(
        "--epochs", min=1, help="Training epochs of every CNN and judge (overrides the budget's).")] = None,
    judges: Annotated[str, typer.Option(
        "--judges", help="Comma-separated classifiers to train: cnn (the bundled CNN, required) and resnet (a second "
                         "judge of another family and recipe).")] = ",".join(JUDGE_NAMES),
    seed: Annotated[int, typer.Option("--seed", help="Seed of subsampling, initialisation and augmentation.")] = 0,
    mix: Annotated[bool, typer.Option(
        "--mix", help="Also train on real + synthetic images together and test on real ones.")] = False,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Where the real-trained baseline is cached. Default: ~/.cache/cifar-synth/evaluator.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Retrain the real baseline even if cached.")] = False,
    inception_weights: Annotated[Path | None, typer.Option(
        "--inception-weights", help="Keras InceptionV3 weights (.h5) for Inception FID. Without it the weights "
                                    "are downloaded if possible, else Inception FID is skipped.")] = None,
    no_inception_fid: Annotated[bool, typer.Option(
        "--no-inception-fid", help="Skip Inception FID (slow on a CPU: two InceptionV3 passes).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout, nothing else.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars and no summary table.")] = False,
    allow_test_leak: Annotated[bool, typer.Option(
        "--allow-test-leak", help="Evaluate an export whose generators saw the test split (train --include-test); "
                                  "the report is labelled not honest.")] = False,
    executor: EVALUATE.executor = EXECUTOR_DEFAULTS.executor,
    parallel: EVALUATE.parallel = None,
    cpus_per_task: EVALUATE.cpus = None,
    gpus_per_task: EVALUATE.gpus = EXECUTOR_DEFAULTS.gpus_per_class,
    address: EVALUATE.address = None,
    slurm_partition: EVALUATE.slurm_partition = None,
    slurm_time: EVALUATE.slurm_time = EXECUTOR_DEFAULTS.slurm_time,
    slurm_option: EVALUATE.slurm_option = None,
):
    """Measure a synthetic dataset: CAS vs the real baseline, recognizability, feature FD/KID and diversity."""
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.evaluator import EvaluateOptions, default_out_dir, evaluate_synthetic
    from cifar_synth.judges import JudgeConfig

    overrides = {"epochs": epochs} if epochs is not None else {}
    out = out if out is not None else default_out_dir(synthetic)
    options = EvaluateOptions(
        data_path=data, dataset=dataset, out_dir=out, config=EvaluatorConfig.budget(budget, **overrides), seed=seed, mix=mix,
        use_cache=not no_cache, cache_dir=cache_dir, inception_weights=inception_weights,
        inception=not no_inception_fid, judges=tuple(name.strip() for name in judges.split(",")),
        judge_config=JudgeConfig.budget(budget, **overrides),
        allow_test_leak=allow_test_leak, executor=EVALUATE.options(executor, parallel, cpus_per_task, gpus_per_task, address, slurm_partition,
                                  slurm_time, slurm_option))
    report = evaluate_synthetic(synthetic, options, reporter(quiet or as_json))  # --json: stdout holds the report
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    if not quiet:
        print_summary(console, report, out)


def print_summary(to: Console, report: "Report", out: Path) -> None:
    """Per-class accuracy of each trained classifier, then the headline CAS, baseline and ratio of each judge."""
    to.print(_summary_table(report))
    head = report.headline
    to.print(_cas_line("CAS", head, report.baseline_cached)
             + (f"  real+synthetic [bold]{percent(head.mix_accuracy)}[/]" if head.mix_accuracy is not None else ""))
    for name, judge in report.judges.items():
        to.print(_cas_line(f"second judge {name}: CAS", judge, judge.baseline_cached))
    for label in report.honesty:
        to.print(f"[bold red]{label}[/]")
    to.print(f"Report: {out}/ (report.md, report.json, confusion_synthetic.png)")


def _cas_line(label: str, figures, cached: bool) -> str:
    return (f"{label} [bold]{percent(figures.cas)}[/]  baseline [bold]{percent(figures.baseline_accuracy)}[/]  "
            f"ratio [bold]{number(figures.cas_ratio, 3)}[/]"
            + (f"  top-5 [bold]{percent(figures.cas_top5)}[/] against {percent(figures.baseline_top5)}"
               if figures.cas_top5 is not None else "")
            + ("  (baseline from cache)" if cached else ""))


def _short(title: str) -> str:
    # A terminal is narrow: "real+synthetic", "resnet real"; report.md has the full titles.
    return title if title in ("real-trained", "synthetic-trained") else title.removesuffix("-trained")


def _summary_table(report: "Report") -> Table:
    columns = report.trained_columns()
    ranked = report.ranked_classes()
    title = "Accuracy on real test images, by training data"
    if ranked is not None:
        title += (f": the {len(ranked) // 2} lowest and highest of {len(report.class_names)} classes by "
                  "synthetic-trained accuracy (all in report.md)")
    table = Table(title=title)
    table.add_column("class")
    for title, _ in columns:
        table.add_column(_short(title), justify="right")
    table.add_column("recognizability", justify="right")
    for row, name in enumerate(ranked or report.class_names):
        table.add_row(name, *(percent(result.per_class_accuracy[name]) for _, result in columns),
                      percent(report.recognizability.per_class_accuracy[name]),
                      end_section=ranked is not None and row == len(ranked) // 2 - 1)
    table.add_row("[bold]all", *(f"[bold]{percent(result.accuracy)}" for _, result in columns),
                  f"[bold]{percent(report.recognizability.accuracy)}", end_section=True)
    return table
