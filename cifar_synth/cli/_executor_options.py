"""The executor options of `train` and `evaluate` (--executor, --parallel, --cpus-per-…, --slurm-…), declared once."""

from typing import Annotated

import typer

from cifar_synth.executors import ExecutorOptions

DEFAULTS = ExecutorOptions()
_PANEL = "Executor"


class ExecutorFlags:
    """The options' types (`Annotated[..., typer.Option]`) for a command whose jobs are `noun`s (plural `nouns`),
    named per `unit` (`--cpus-per-<unit>`), and the `ExecutorOptions` they give."""

    def __init__(self, unit: str, noun: str, nouns: str, slurm_time_note: str = ""):
        self.unit = unit
        self.executor = Annotated[str, typer.Option(
            "--executor", help=f"Where the {nouns} train: local (this machine), ray (a Ray cluster) or slurm (a job "
                               f"array); beyond one local process they train at once (see docs/scale.md).",
            rich_help_panel=_PANEL)]
        self.parallel = Annotated[int | None, typer.Option(
            "--parallel", help=f"{nouns.capitalize()} at once. Default: 1 locally (one after another in this "
                               "process), as many as the cluster's resources allow on ray/slurm.",
            rich_help_panel=_PANEL)]
        self.cpus = Annotated[int | None, typer.Option(
            f"--cpus-per-{unit}", help=f"CPUs (TensorFlow threads) per {noun}. Default: locally the cores shared "
                                       "among --parallel, else 1.", rich_help_panel=_PANEL)]
        self.gpus = Annotated[int, typer.Option(
            f"--gpus-per-{unit}", help=f"GPUs per {noun} (ray, slurm).", rich_help_panel=_PANEL)]
        self.address = Annotated[str | None, typer.Option(
            "--address", help="Ray cluster address. Default: $RAY_ADDRESS, else a local Ray started for the run.",
            rich_help_panel=_PANEL)]
        self.slurm_partition = Annotated[str | None, typer.Option(
            "--slurm-partition", help="Slurm partition.", rich_help_panel=_PANEL)]
        self.slurm_time = Annotated[str, typer.Option(
            "--slurm-time", help=f"Time limit of each {noun}'s Slurm job (sbatch --time format){slurm_time_note}.",
            rich_help_panel=_PANEL)]
        self.slurm_option = Annotated[list[str] | None, typer.Option(
            "--slurm-option", help="Extra sbatch option as KEY=VALUE (e.g. account=myproject); repeatable.",
            rich_help_panel=_PANEL)]

    def options(self, executor: str, parallel: int | None, cpus: int | None, gpus: int, address: str | None,
                slurm_partition: str | None, slurm_time: str, slurm_option: list[str] | None) -> ExecutorOptions:
        return ExecutorOptions(executor=executor, parallel=parallel, cpus_per_class=cpus, gpus_per_class=gpus,
                               address=address, slurm_partition=slurm_partition, slurm_time=slurm_time,
                               slurm_options=tuple(slurm_option or ()), unit=self.unit)


TRAIN = ExecutorFlags("class", "class", "classes", "; a class stopped by it is requeued and resumes")
EVALUATE = ExecutorFlags("task", "classifier", "classifiers")
