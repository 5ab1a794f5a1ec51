"""Work any engine can run (`Job`: a class's training, an evaluation's classifier), and the files through which its
worker reports.

<state dir>/               runs/.cifar-synth for `train`, <report>/.cifar-synth for `evaluate`
    session-<id>           written by the driver; a worker that cannot see it is not on the driver's storage
    status/<job>.json      the worker's state (running, done, failed), attempt, host, pid, error, and what the job
                           returns when done
    logs/<job>.log         everything the worker prints, TensorFlow's own log included (appended per attempt)

Files rather than an engine's own channel, because Slurm has no other way back and Ray and Slurm need the state
directory on shared storage anyway: one mechanism for all three engines.
"""

import contextlib
import json
import os
import socket
import sys
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from cifar_synth.config import GANConfig
from cifar_synth.errors import UserError
from cifar_synth.files import write_json_atomic

STATE_DIR = ".cifar-synth"


class Job:
    """What an engine runs and `board` shows. A job is a frozen dataclass (pickled to its worker) with `name`,
    `state_dir`, `session`, `cpus` (TensorFlow threads; None: TensorFlow's default) and `cwd` (the driver's
    directory, against which relative paths were given), and defines `work` and `cells`."""

    NOUNS: ClassVar[tuple[str, str]] = ("job", "jobs")  # the board's first column, and its failure line
    COLUMNS: ClassVar[tuple[str, ...]] = ()  # the board's columns between the state and the host
    SHARED: ClassVar[str] = "the state directory"  # what must be on storage every node shares
    AFTER_FAILURE: ClassVar[str] = "run the same command again once their errors are fixed"

    @property
    def session_file(self) -> Path:
        return session_file(self.state_dir, self.session)

    @property
    def status_file(self) -> Path:
        return self.state_dir / "status" / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def work(self) -> dict:
        """Do the job in this (worker) process; what it returns goes into its status file when done."""
        raise NotImplementedError

    def cells(self, status: dict) -> list[str]:
        """The board's `COLUMNS` for this job, from its status (`read_status`) and whatever else it left."""
        raise NotImplementedError


@dataclass(frozen=True)
class ClassJob(Job):
    """One class's training (`training.train_class_from`) into its run directory under `runs_dir`."""

    name: str  # the class
    data: object  # cifar_synth.data.RealData, opened (and hashed) once by the driver
    gan_config: GANConfig
    options: object  # cifar_synth.training.TrainOptions
    runs_dir: Path
    session: str
    cpus: int | None
    cwd: str

    NOUNS = ("class", "classes")
    COLUMNS = ("epoch", "d_loss", "g_loss", "images/s")
    SHARED = "--runs"
    AFTER_FAILURE = "run the same command again to resume them once their errors are fixed"

    @property
    def state_dir(self) -> Path:
        return self.runs_dir / STATE_DIR

    def work(self) -> dict:
        from cifar_synth.training import train_class_from

        result = train_class_from(self.data, self.name, self.gan_config, self.options, self.runs_dir, log_reporter())
        return {"epochs_done": result.epochs_done, "images_per_second": result.images_per_second}

    def cells(self, status: dict) -> list[str]:
        from cifar_synth.runs import run_summary

        summary = run_summary(self.runs_dir / self.name)
        if self.options.steps is not None:
            epoch = f"{summary.steps if summary else '-'}/{self.options.steps} steps"
        else:
            epochs = self.options.epochs
            epoch = f"{summary.epochs}/{epochs}" if summary else f"-/{epochs}" if epochs else "-"
        losses = [f"{float(summary.last[name]):.3f}" if summary else "" for name in ("d_loss", "g_loss")]
        rate = f"{summary.last_rate:.0f}" if summary and summary.last_rate else ""
        return [epoch, *losses, rate]


def session_file(state_dir: Path, session: str) -> Path:
    return state_dir / f"session-{session}"


def start_session(state_dir: Path) -> str:
    """Mark a new session in `state_dir` (the file workers look for to prove they share the driver's storage)."""
    session = uuid.uuid4().hex[:12]
    write_json_atomic(session_file(state_dir, session), {
        "host": socket.gethostname(), "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return session


def read_status(job: Job) -> dict:
    """The worker's last report of this session ({} before the first)."""
    try:
        status = json.loads(job.status_file.read_text())
    except (OSError, ValueError):
        return {}
    return status if status.get("session") == job.session else {}


def run_job(job: Job) -> None:
    """Do `job` in this (worker) process, reporting through its status and log files: the function every engine
    runs."""
    with contextlib.suppress(OSError):  # a node without the driver's directory has only absolute paths to go by
        os.chdir(job.cwd)
    if not job.session_file.exists():
        raise UserError(f"{job.state_dir.parent} is not the driver's: {socket.gethostname()} cannot see "
                        f"{job.session_file}. With Ray or Slurm, {job.SHARED} must be on storage every node shares "
                        "(NFS, Lustre, ...), under the same path.")
    status = {"session": job.session, "attempt": read_status(job).get("attempt", 0) + 1,
              "host": socket.gethostname(), "pid": os.getpid(), "log": str(job.log_file)}
    write_json_atomic(job.status_file, {**status, "state": "running"})
    with _output_to(job.log_file):
        print(f"=== {job.name}: session {job.session}, attempt {status['attempt']} on {status['host']} "
              f"(pid {status['pid']}), {datetime.now(timezone.utc).isoformat(timespec='seconds')}", flush=True)
        try:
            limit_threads(job.cpus)
            import tensorflow as tf

            print(f"TensorFlow threads: {tf.config.threading.get_intra_op_parallelism_threads() or 'default'} "
                  f"intra-op, {tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op",
                  flush=True)
            returned = job.work()
        except Exception as error:
            traceback.print_exc()
            message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            write_json_atomic(job.status_file, {**status, "state": "failed", "error": message})
            raise
    write_json_atomic(job.status_file, {**status, "state": "done", **returned})


def log_reporter():
    """A worker's Reporter: everything to the job's log (stdout and stderr are that file in a worker), quiet or not,
    because the log is the record."""
    from rich.console import Console

    from cifar_synth.reporter import Reporter

    return Reporter(console=Console(file=sys.stdout, width=120), err_console=Console(file=sys.stderr, width=120))


def limit_threads(cpus: int | None) -> None:
    """Give TensorFlow `cpus` threads per pool; must run before TensorFlow's first operation in this process."""
    if cpus is None:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cpus)
    tf.config.threading.set_inter_op_parallelism_threads(cpus)


@contextlib.contextmanager
def _output_to(log_file: Path):
    """Send this process's stdout and stderr, C++ libraries' included, to the end of `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log_file.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
