"""`--executor local --parallel N`: N classes at once on this machine, each in a fresh process of its own."""

import multiprocessing
import os
import pickle
import signal
import sys
import threading
from pathlib import Path

from cifar_synth.executors.job import Job, run_job

# Seconds to let interrupted workers save their last finished epoch and exit before they are terminated.
STOP_GRACE_SECONDS = 30


class LocalProcesses:
    """Start a spawned process per job, at most `parallel` at a time, in the order given.

    Spawned, not forked: a fresh interpreter whose TensorFlow starts with its own thread pools (a forked child
    would inherit a TensorFlow runtime already initialised in the parent).
    """

    def __init__(self, executor):
        self.parallel = executor.parallel or 1
        self.context = multiprocessing.get_context("spawn")
        self.queued: list[Job] = []
        self.running: dict[str, multiprocessing.Process] = {}

    def submit(self, jobs: list[Job]) -> None:
        self.queued = list(jobs)

    def poll(self) -> dict[str, str | None]:
        finished = {}
        for name, process in list(self.running.items()):
            if process.exitcode is not None:
                del self.running[name]
                finished[name] = None if process.exitcode == 0 else _exit_description(process.exitcode)
        while self.queued and len(self.running) < self.parallel:
            job = self.queued.pop(0)
            process = self.context.Process(target=_work, args=(job.log_file, pickle.dumps(job)),
                                           name=f"cifar-synth {job.name}")
            process.start()
            self.running[job.name] = process
        return finished

    def close(self) -> None:
        """Reap the workers; after a Ctrl-C (which they received too) give them time to save, then stop them."""
        for process in self.running.values():
            process.join(STOP_GRACE_SECONDS)
            if process.exitcode is None:
                process.terminate()
                process.join()


def _work(log_file: Path, pickled_job: bytes) -> None:
    """The worker process: its output goes to the class's log from the start, before unpickling the job imports
    TensorFlow (whose start-up lines would otherwise break into the driver's live table)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    _exit_with_the_driver()
    try:
        run_job(pickle.loads(pickled_job))
    except Exception:  # reported in the job's status and log; no second traceback on the driver's terminal
        sys.exit(1)


def _exit_with_the_driver() -> None:
    """End this worker as soon as its driver's process ends (a SIGKILL, the OOM killer, a closed terminal): an
    orphan would train on under its class's lock, refusing the user's rerun, while the user believes it stopped.

    A thread waits on the parent's sentinel: a pipe whose write end only the driver's process holds (spawn's own,
    `multiprocessing.parent_process()`), so it reads as closed however the driver ended, even before the thread
    started. Not prctl(PR_SET_PDEATHSIG): Linux only, fired by the end of the driver's *thread* that started the
    worker rather than of its process, and blind to a driver that died before the worker called it.

    The exit is immediate, as a SIGKILL's would be: the class resumes from its last checkpoint either way, and its
    lock (the operating system's) goes with the process.
    """
    driver = multiprocessing.parent_process()

    def watch() -> None:
        driver.join()
        print(f"=== the driver (pid {driver.pid}) has ended: this worker stops with it", flush=True)
        os._exit(1)

    threading.Thread(target=watch, name="exit with the driver", daemon=True).start()


def _exit_description(code: int) -> str:
    if code < 0:
        return f"worker process killed by {signal.Signals(-code).name}"
    return f"worker process exited with status {code}"
