"""The driver's loop and display: one live Rich row per job while an engine runs them, then a summary table.

A row's state is queued until the job's worker reports, then running (retried once an earlier attempt died),
then done or failed as the engine says; the job's own columns (a class's epoch, losses and images/s) come from what
it leaves (`Job.cells`).
"""

import contextlib
import time

from rich.live import Live
from rich.table import Table

from cifar_synth.errors import UserError
from cifar_synth.executors.job import Job, read_status
from cifar_synth.reporter import Reporter

POLL_SECONDS = 1.0


def drive(engine, stages: list[list[Job]], reporter: Reporter) -> None:
    """Run the jobs of each stage on `engine`, a stage once the one before it is done, until each is done or failed;
    raise UserError after the summary if any failed (the stages after a failed one do not start). Whatever ends the
    loop, a Ctrl-C included, the engine's `close` stops or lets go of its jobs, and returns the line that names
    those outliving this process (Slurm's), if any."""
    jobs = [job for stage in stages for job in stage]
    outcomes: dict[str, str | None] = {}  # job name → None when done, else its error
    try:
        display = Live(console=reporter.console, refresh_per_second=2, transient=True)
        with contextlib.nullcontext() if reporter.quiet else display:
            for stage in stages:
                engine.submit(stage)
                while True:
                    outcomes.update(engine.poll())
                    display.update(_table(jobs, outcomes))
                    if all(job.name in outcomes for job in stage):
                        break
                    time.sleep(POLL_SECONDS)
                if any(outcomes[job.name] is not None for job in stage):
                    break
    finally:
        left_running = engine.close()
        if left_running:
            reporter.warn(left_running)
    jobs[0].session_file.unlink(missing_ok=True)  # every worker is done with it (an interrupted session keeps it)
    if not reporter.quiet:
        reporter.console.print(_table(jobs, outcomes, summary=True))
    failed = [job for job in jobs if outcomes.get(job.name) is not None]
    for job in failed:  # below the table, whole: a table cell would cut a long error or path
        reporter.warn(f"{job.name} failed: {_error_of(job, outcomes[job.name])}\n"
                      f"  log: {read_status(job).get('log', job.log_file)}")
    if failed:
        unstarted = [job.name for job in jobs if job.name not in outcomes]
        not_started = f"; not started: {', '.join(unstarted)}" if unstarted else ""
        raise UserError(f"{len(failed)} of {len(jobs)} {jobs[0].NOUNS[1]} failed "
                        f"({', '.join(job.name for job in failed)}){not_started}; {jobs[0].AFTER_FAILURE}")


def _error_of(job: Job, engine_error: str | None) -> str | None:
    """A failed job's error as its worker reported it, else as the engine saw it (e.g. a killed process)."""
    if engine_error is None:
        return None
    status = read_status(job)
    return status.get("error") if status.get("state") == "failed" else engine_error


def _table(jobs: list[Job], outcomes: dict[str, str | None], summary: bool = False) -> Table:
    table = Table(title="Training summary" if summary else None, title_justify="left")
    table.add_column(jobs[0].NOUNS[0])
    table.add_column("state")
    for column in jobs[0].COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("host")
    for job in jobs:
        table.add_row(*_row(job, outcomes))
    return table


def _row(job: Job, outcomes: dict[str, str | None]) -> list[str]:
    status = read_status(job)
    attempt = status.get("attempt", 0)
    if job.name in outcomes:
        state = "[red]failed[/]" if outcomes[job.name] is not None else "[green]done[/]"
    else:
        state = "queued" if not attempt else "running" if attempt == 1 else "[yellow]retried[/]"
    if attempt > 1:
        state += f" (attempt {attempt})"
    return [job.name, state, *job.cells(status), status.get("host", "")]
