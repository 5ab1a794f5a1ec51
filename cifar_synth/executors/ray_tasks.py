"""`--executor ray`: one Ray task per job, with its CPUs and GPUs, retried in a new worker if its worker dies."""

import logging
import os

from cifar_synth.extras import require_extra
from cifar_synth.executors.job import Job, run_job

# Attempts after a worker dies (node lost, out of memory, killed); a class's resumes from its run directory.
RETRIES = 3


class RayTasks:
    """Submit each job as a task of `run_job` to the Ray cluster at `--address` / $RAY_ADDRESS, else to a local
    Ray started for this run (and stopped after it).

    `max_calls=1` gives every task a fresh worker process, so TensorFlow's memory (a GPU's included) is released
    when a job ends. A failure inside `run_job` (a user error, a non-finite loss) is not retried: it would fail
    again the same way.
    """

    def __init__(self, executor):
        self.ray = require_extra("ray", "ray", "--executor ray")
        self.started_here = not self.ray.is_initialized()
        if self.started_here:
            address = executor.address or os.environ.get("RAY_ADDRESS")
            local = {} if address else {"include_dashboard": False}
            try:
                self.ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **local)
            except ConnectionError as error:
                from cifar_synth.errors import UserError

                raise UserError(f"cannot reach the Ray cluster at {address}: {error}") from None
        self.task = self.ray.remote(num_cpus=executor.cpus(), num_gpus=executor.gpus_per_class, max_calls=1,
                                    max_retries=RETRIES)(run_job)
        self.parallel = executor.parallel
        self.queued: list[Job] = []
        self.running: dict = {}  # ObjectRef → job name

    def submit(self, jobs: list[Job]) -> None:
        self.queued = list(jobs)

    def poll(self) -> dict[str, str | None]:
        finished = {}
        if self.running:
            ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            for ref in ready:
                finished[self.running.pop(ref)] = self._error(ref)
        while self.queued and (self.parallel is None or len(self.running) < self.parallel):
            job = self.queued.pop(0)
            self.running[self.task.options(name=f"cifar-synth {job.name}").remote(job)] = job.name
        return finished

    def _error(self, ref) -> str | None:
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as error:  # raised inside run_job
            cause = error.cause
            return str(cause) if cause is not None else str(error).splitlines()[-1]
        except self.ray.exceptions.RayError as error:  # the worker died once more than RETRIES allow
            return f"{type(error).__name__} after {RETRIES} retries: {str(error).splitlines()[0]}"
        return None

    def close(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref)
        if self.started_here:
            self.ray.shutdown()
