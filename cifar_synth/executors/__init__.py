"""Where each class trains (and each of an evaluation's classifiers): in this process, in local processes, as Ray
tasks, or as a Slurm job array.

The executor only decides where `training.train_class_from` runs; a class's run directory, resume and artifacts
are the same whichever executor ran it. Beyond the in-process default, one driver serves every engine: each class
becomes a `ClassJob` (each classifier of `evaluate` a `fits.FitJob`), an engine (`local`, `ray_tasks`,
`slurm_array`) runs it, the worker reports through files in a state directory (see `job`), and `board` shows one
live row per job, then a summary.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_synth.config import GANConfig, TrainOptions
from cifar_synth.errors import UserError

if TYPE_CHECKING:
    from cifar_synth.reporter import Reporter

EXECUTORS = ("local", "ray", "slurm")
SLURM_CLUSTERS = ("slurm", "local")
DEFAULT_SLURM_TIME = "4:00:00"
# Slurm's own time formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


@dataclass(frozen=True)
class ExecutorOptions:
    """Where the classes train and with which resources each."""

    executor: str = "local"
    parallel: int | None = None  # jobs at once; None: 1 locally, as many as the resources allow on Ray/Slurm
    # TensorFlow's intra/inter-op threads and the CPUs asked of Ray/Slurm per job; None: locally the machine's
    # cores shared among the --parallel jobs (TensorFlow's own default when one job runs here), else 1.
    cpus_per_class: int | None = None
    gpus_per_class: int = 0
    address: str | None = None  # Ray cluster; None: $RAY_ADDRESS, else a local Ray started for the run
    slurm_partition: str | None = None
    slurm_time: str = DEFAULT_SLURM_TIME  # per job; a class that needs longer is requeued and resumes
    slurm_options: tuple[str, ...] = ()  # extra sbatch options as KEY=VALUE, e.g. account=abc, qos=high
    # "local" runs the same submitit job array as subprocesses of this machine (tests, a try without a cluster).
    slurm_cluster: str = "slurm"
    unit: str = "class"  # what a job is, as the options name it: --cpus-per-class (train), --cpus-per-task (evaluate)

    def validate(self) -> None:
        """Raise UserError naming the first option that cannot work."""
        if self.executor not in EXECUTORS:
            raise UserError(f"unknown executor {self.executor!r}; valid: {', '.join(EXECUTORS)}")
        cpus, gpus = f"--cpus-per-{self.unit}", f"--gpus-per-{self.unit}"
        for name, value, least in (("--parallel", self.parallel, 1), (cpus, self.cpus_per_class, 1),
                                   (gpus, self.gpus_per_class, 0)):
            if value is not None and value < least:
                raise UserError(f"{name} must be at least {least}, got {value}")
        if self.gpus_per_class > 1:
            raise UserError(f"{gpus} above 1 is not supported: one {self.unit} over several GPUs would need "
                            "tf.distribute.MirroredStrategy, which the GAN's training step is not yet correct under "
                            "(docs/scale.md); run more at once instead")
        if self.gpus_per_class and self.executor == "local":
            raise UserError(f"{gpus} needs --executor ray or slurm, which give each {self.unit} its own GPU "
                            "(a local Ray does so on one machine)")
        if self.address is not None and self.executor != "ray":
            raise UserError("--address is for --executor ray")
        slurm_set = self.slurm_partition is not None or self.slurm_options or self.slurm_time != DEFAULT_SLURM_TIME
        if slurm_set and self.executor != "slurm":
            raise UserError("--slurm-partition, --slurm-time and --slurm-option are for --executor slurm")
        if self.slurm_cluster not in SLURM_CLUSTERS:
            raise UserError(f"unknown submitit cluster {self.slurm_cluster!r}; valid: {', '.join(SLURM_CLUSTERS)}")
        self.slurm_minutes()
        self.sbatch_options()

    def slurm_minutes(self) -> int:
        """--slurm-time in whole minutes (rounded up), read as sbatch reads --time."""
        match = _SLURM_TIME.match(self.slurm_time.strip())
        if not match:
            raise UserError(f"--slurm-time {self.slurm_time!r} is not a Slurm time (MM, HH:MM:SS, D-HH:MM)")
        days, first, second, third = (int(part) if part else None for part in match.groups())
        if days is not None:  # D-H[:M[:S]]
            seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
        elif third is not None:  # H:M:S
            seconds = first * 3600 + second * 60 + third
        else:  # M[:S]
            seconds = first * 60 + (second or 0)
        if seconds <= 0:
            raise UserError(f"--slurm-time must be positive, got {self.slurm_time!r}")
        return -(-seconds // 60)

    def sbatch_options(self) -> dict[str, str]:
        """--slurm-option KEY=VALUE pairs as submitit's `slurm_additional_parameters`."""
        pairs = {}
        for option in self.slurm_options:
            key, sep, value = option.partition("=")
            key = key.strip().lstrip("-").replace("-", "_")
            if not sep or not key:
                raise UserError(f"--slurm-option {option!r} must be KEY=VALUE, e.g. account=myproject")
            pairs[key] = value
        return pairs

    def cpus(self) -> int | None:
        """CPUs (and TensorFlow threads) per job; None leaves TensorFlow's default."""
        if self.cpus_per_class is not None:
            return self.cpus_per_class
        if self.executor == "local":
            return None if self.in_process() else max(1, _usable_cores() // self.parallel)
        return 1

    def in_process(self) -> bool:
        """One job after another in this process, as without an executor: each with its own progress bars."""
        return self.executor == "local" and (self.parallel or 1) == 1


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_with_executor(requested: list[str], gan_config: GANConfig, options: TrainOptions,
                        data_path: str | Path | None, runs_dir: str | Path, executor: ExecutorOptions,
                        reporter: "Reporter | None" = None, dataset: str | None = None) -> None:
    """Train the `requested` classes (`--class` values) of the real data (`data_path`, `dataset`: `open_real_data`)
    into `runs_dir` where `executor` says; raise UserError after the summary if any class failed."""
    from cifar_synth.classes import SHARED_START
    from cifar_synth.executors.board import drive
    from cifar_synth.executors.job import STATE_DIR, ClassJob, limit_threads, start_session
    from cifar_synth.reporter import Reporter
    from cifar_synth.training import open_training_data, plan_runs, train_classes

    reporter = reporter or Reporter()
    executor.validate()
    if executor.in_process():
        limit_threads(executor.cpus())
        train_classes(requested, gan_config, options, data_path, runs_dir, reporter, dataset)
        return
    gan_config.validate()
    engine = engine_for(executor)  # before any work: a missing extra or an unreachable cluster fails first
    data, class_names = open_training_data(requested, data_path, dataset, options, runs_dir, reporter)
    data.sha256  # hashed now, once, and sent along: not again by every worker
    runs_dir = Path(runs_dir).absolute()
    session = start_session(runs_dir / STATE_DIR)
    jobs = [ClassJob(name, data, gan_config, run_options, runs_dir, session, executor.cpus(), os.getcwd())
            for name, run_options in plan_runs(class_names, options, runs_dir, reporter)]
    # The shared start runs alone, first: the classes may start from it.
    first_alone = len(jobs) > 1 and jobs[0].name == SHARED_START
    drive(engine, [jobs[:1], jobs[1:]] if first_alone else [jobs], reporter)


def engine_for(executor: ExecutorOptions):
    """The engine that runs jobs where `executor` says (not in this process)."""
    if executor.executor == "local":
        from cifar_synth.executors.local import LocalProcesses

        return LocalProcesses(executor)
    if executor.executor == "ray":
        from cifar_synth.executors.ray_tasks import RayTasks

        return RayTasks(executor)
    from cifar_synth.executors.slurm_array import SlurmArray

    return SlurmArray(executor)
