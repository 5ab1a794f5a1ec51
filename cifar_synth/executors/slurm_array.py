"""`--executor slurm`: one Slurm job array through submitit, a task per job, requeued (and resumed) when Slurm
stops it at its time limit or preempts it."""

import shutil

from cifar_synth.errors import UserError
from cifar_synth.extras import require_extra
from cifar_synth.executors.job import Job, run_job

# Requeues after a time limit per job (preemptions do not count); submitit's default of 3 would abandon a class
# that needs more than four --slurm-time slots.
TIMEOUT_REQUEUES = 50


class SlurmArray:
    """Submit all jobs as one array; submitit keeps its scripts, pickles and Slurm logs in
    <state dir>/slurm/ (runs/.cifar-synth/slurm/ for `train`)."""

    def __init__(self, executor):
        self.submitit = require_extra("submitit", "slurm", "--executor slurm")
        if executor.slurm_cluster == "slurm":  # before submitit, which fails on a missing srun with a traceback
            _require_slurm_commands()
        self.executor = executor
        self.jobs: dict = {}  # job name → submitit Job

    def submit(self, jobs: list[Job]) -> None:
        folder = jobs[0].state_dir / "slurm"
        submitter = self.submitit.AutoExecutor(folder=folder, cluster=self.executor.slurm_cluster,
                                                slurm_max_num_timeout=TIMEOUT_REQUEUES)
        parameters = {"name": "cifar-synth", "timeout_min": self.executor.slurm_minutes(),
                      "cpus_per_task": self.executor.cpus(), "nodes": 1, "tasks_per_node": 1}
        if self.executor.gpus_per_class:
            parameters["gpus_per_node"] = self.executor.gpus_per_class
        if self.executor.parallel:
            parameters["slurm_array_parallelism"] = self.executor.parallel
        if self.executor.slurm_partition:
            parameters["slurm_partition"] = self.executor.slurm_partition
        if self.executor.sbatch_options():
            parameters["slurm_additional_parameters"] = self.executor.sbatch_options()
        submitter.update_parameters(**parameters)
        submitted = submitter.map_array(_Requeueable(), jobs)
        self.jobs = {job.name: handle for job, handle in zip(jobs, submitted)}

    def poll(self) -> dict[str, str | None]:
        finished = {}
        for name, handle in list(self.jobs.items()):
            if handle.done():
                del self.jobs[name]
                finished[name] = _error(handle)
        return finished

    def close(self) -> str | None:
        """Leave unfinished jobs to Slurm: they keep training (a rerun of the command resumes and shows them).
        Name them, to follow or cancel."""
        if not self.jobs or self.executor.slurm_cluster != "slurm":
            return None
        return _left_running([handle.job_id for handle in self.jobs.values()])


def _require_slurm_commands() -> None:
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        raise UserError(f"--executor slurm needs Slurm's {' and '.join(missing)}, not found on PATH: run on a Slurm "
                        "cluster's login node, or use --executor local (this machine) or --executor ray")


def _left_running(job_ids: list[str]) -> str:
    """The line naming Slurm jobs that outlive the driver: an array's tasks as Slurm writes them, 1234_[0-3,7]."""
    array = job_ids[0].partition("_")[0]
    if len(job_ids) == 1:
        return f"Slurm job {job_ids[0]} keeps running; rerun to follow it or scancel {job_ids[0]}"
    indices = sorted(int(job_id.partition("_")[2]) for job_id in job_ids)
    spans = []  # [first, last] of each run of consecutive indices
    for index in indices:
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    tasks = ",".join(str(first) if first == last else f"{first}-{last}" for first, last in spans)
    return f"Slurm jobs {array}_[{tasks}] keep running; rerun to follow them or scancel {array}"


def _error(handle) -> str | None:
    try:
        handle.result()
    except Exception as error:  # submitit's FailedJobError carries the worker's traceback; its last line says why
        lines = [line for line in str(error).splitlines() if line.strip()]
        return lines[-1] if lines else type(error).__name__
    return None


class _Requeueable:
    """The job submitit runs; on a timeout or preemption signal submitit calls `checkpoint` and requeues the same
    call: a class resumes from its run directory, an evaluation's classifier trains again."""

    def __call__(self, job: Job) -> None:
        run_job(job)

    def checkpoint(self, job: Job):
        import submitit

        return submitit.helpers.DelayedSubmission(self, job)
