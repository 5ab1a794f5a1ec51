"""One class's training as a job any engine can run, and the files through which its worker reports.

runs/.cifar-synth/
    session-<id>           written by the driver; a worker that cannot see it is not on the driver's storage
    status/<class>.json    the worker's state (running, done, failed), attempt, host, pid, error
    logs/<class>.log       everything the worker prints, TensorFlow's own log included (appended per attempt)

Files rather than an engine's own channel, because Slurm has no other way back and Ray and Slurm need --runs on
shared storage anyway: one mechanism for all three engines.
"""

import contextlib
import json
import os
import socket
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cifar_synth.config import GANConfig
from cifar_synth.errors import UserError
from cifar_synth.files import write_json_atomic

STATE_DIR = ".cifar-synth"


@dataclass(frozen=True)
class ClassJob:
    class_name: str
    data: object  # cifar_synth.data.RealData, opened (and hashed) once by the driver
    gan_config: GANConfig
    options: object  # cifar_synth.training.TrainOptions
    runs_dir: Path
    session: str
    cpus: int | None  # TensorFlow threads; None: TensorFlow's default
    cwd: str  # the driver's directory, against which relative paths (--data, --guide) were given

    @property
    def session_file(self) -> Path:
        return session_file(self.runs_dir, self.session)

    @property
    def status_file(self) -> Path:
        return self.runs_dir / STATE_DIR / "status" / f"{self.class_name}.json"

    @property
    def log_file(self) -> Path:
        return self.runs_dir / STATE_DIR / "logs" / f"{self.class_name}.log"


def session_file(runs_dir: Path, session: str) -> Path:
    return runs_dir / STATE_DIR / f"session-{session}"


def start_session(runs_dir: Path, session: str) -> str:
    """Mark a new session in `runs_dir` (the file workers look for to prove they share the driver's storage)."""
    path = session_file(runs_dir, session)
    write_json_atomic(path, {"host": socket.gethostname(), "pid": os.getpid(),
                             "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return session


def read_status(job: ClassJob) -> dict:
    """The worker's last report of this session ({} before the first)."""
    try:
        status = json.loads(job.status_file.read_text())
    except (OSError, ValueError):
        return {}
    return status if status.get("session") == job.session else {}


def run_job(job: ClassJob) -> None:
    """Train one class in this (worker) process: the function every engine runs."""
    with contextlib.suppress(OSError):  # a node without the driver's directory has only absolute paths to go by
        os.chdir(job.cwd)
    if not job.session_file.exists():
        raise UserError(f"{job.runs_dir} is not the driver's: {socket.gethostname()} cannot see "
                        f"{job.session_file}. With Ray or Slurm, --runs must be on storage every node shares "
                        "(NFS, Lustre, ...), under the same path.")
    status = {"session": job.session, "attempt": read_status(job).get("attempt", 0) + 1,
              "host": socket.gethostname(), "pid": os.getpid(), "log": str(job.log_file)}
    write_json_atomic(job.status_file, {**status, "state": "running"})
    with _output_to(job.log_file):
        print(f"=== {job.class_name}: session {job.session}, attempt {status['attempt']} on {status['host']} "
              f"(pid {status['pid']}), {datetime.now(timezone.utc).isoformat(timespec='seconds')}", flush=True)
        try:
            result = _train(job)
        except Exception as error:
            traceback.print_exc()
            message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            write_json_atomic(job.status_file, {**status, "state": "failed", "error": message})
            raise
    write_json_atomic(job.status_file, {**status, "state": "done", "epochs_done": result.epochs_done,
                                        "images_per_second": result.images_per_second})


def _train(job: ClassJob):
    limit_threads(job.cpus)
    import tensorflow as tf
    from rich.console import Console

    print(f"TensorFlow threads: {tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op, "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op", flush=True)

    from cifar_synth.reporter import Reporter
    from cifar_synth.training import train_class_from

    # Everything to the class's log (stdout and stderr are that file here), quiet or not: the log is the record.
    reporter = Reporter(console=Console(file=sys.stdout, width=120), err_console=Console(file=sys.stderr, width=120))
    return train_class_from(job.data, job.class_name, job.gan_config, job.options, job.runs_dir, reporter)


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
