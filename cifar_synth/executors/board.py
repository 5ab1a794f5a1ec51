"""The driver's loop and display: one live Rich row per class while an engine runs them, then a summary table.

A row's state is queued until the class's worker reports, then running (retried once an earlier attempt died),
then done or failed as the engine says; its epoch, losses and images/s come from the run's history.csv.
"""

import contextlib
import csv
import time
from pathlib import Path

from rich.live import Live
from rich.table import Table

from cifar_synth.classes import SHARED_START
from cifar_synth.errors import UserError
from cifar_synth.executors.job import ClassJob, read_status
from cifar_synth.reporter import Reporter

POLL_SECONDS = 1.0


def drive(engine, jobs: list[ClassJob], reporter: Reporter) -> None:
    """Run `jobs` on `engine` until each is done or failed; raise UserError after the summary if any failed."""
    outcomes: dict[str, str | None] = {}  # class → None when done, else its error
    # The shared start runs alone, first: the classes may start from it.
    stages = [jobs[:1], jobs[1:]] if len(jobs) > 1 and jobs[0].class_name == SHARED_START else [jobs]
    try:
        display = Live(console=reporter.console, refresh_per_second=2, transient=True)
        with contextlib.nullcontext() if reporter.quiet else display:
            for stage in stages:
                engine.submit(stage)
                while True:
                    outcomes.update(engine.poll())
                    display.update(_table(jobs, outcomes))
                    if all(job.class_name in outcomes for job in stage):
                        break
                    time.sleep(POLL_SECONDS)
                if any(outcomes[job.class_name] is not None for job in stage):
                    break
    finally:
        engine.close()
    jobs[0].session_file.unlink(missing_ok=True)  # every worker is done with it (an interrupted session keeps it)
    if not reporter.quiet:
        reporter.console.print(_table(jobs, outcomes, summary=True))
    failed = [job for job in jobs if outcomes.get(job.class_name) is not None]
    for job in failed:  # below the table, whole: a table cell would cut a long error or path
        reporter.warn(f"{job.class_name} failed: {_error_of(job, outcomes[job.class_name])}\n"
                      f"  log: {read_status(job).get('log', job.log_file)}")
    if failed:
        unstarted = [job.class_name for job in jobs if job.class_name not in outcomes]
        not_started = f"; not started: {', '.join(unstarted)}" if unstarted else ""
        raise UserError(f"{len(failed)} of {len(jobs)} classes failed ({', '.join(job.class_name for job in failed)})"
                        f"{not_started}; run the same command again to resume them once their errors are fixed")


def _error_of(job: ClassJob, engine_error: str | None) -> str | None:
    """A failed class's error as its worker reported it, else as the engine saw it (e.g. a killed process)."""
    if engine_error is None:
        return None
    status = read_status(job)
    return status.get("error") if status.get("state") == "failed" else engine_error


def _table(jobs: list[ClassJob], outcomes: dict[str, str | None], summary: bool = False) -> Table:
    table = Table(title="Training summary" if summary else None, title_justify="left")
    for column in ("class", "state", "epoch", "d_loss", "g_loss", "images/s", "host"):
        table.add_column(column, justify="right" if column in ("epoch", "d_loss", "g_loss", "images/s") else "left")
    for job in jobs:
        table.add_row(*_row(job, outcomes))
    return table


def _row(job: ClassJob, outcomes: dict[str, str | None]) -> list[str]:
    status = read_status(job)
    attempt = status.get("attempt", 0)
    if job.class_name in outcomes:
        state = "[red]failed[/]" if outcomes[job.class_name] is not None else "[green]done[/]"
    else:
        state = "queued" if not attempt else "running" if attempt == 1 else "[yellow]retried[/]"
    if attempt > 1:
        state += f" (attempt {attempt})"
    epochs = job.options.epochs
    last = _last_epoch(job.runs_dir / job.class_name / "history.csv")
    epoch = f"{last['epoch']}/{epochs}" if last else f"-/{epochs}" if epochs else "-"
    losses = [f"{float(last[name]):.3f}" if last else "" for name in ("d_loss", "g_loss")]
    rate = f"{last['rate']:.0f}" if last and last["rate"] else ""
    return [job.class_name, state, epoch, *losses, rate, status.get("host", "")]


def _last_epoch(history: Path) -> dict | None:
    """The last history row, with `rate`: that epoch's real images per second."""
    try:
        with history.open(newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError:
        return None
    if not rows:
        return None
    last = rows[-1]
    before = int(rows[-2]["images_seen"]) if len(rows) > 1 else 0
    seconds = float(last["seconds"])
    return {**last, "rate": (int(last["images_seen"]) - before) / seconds if seconds > 0 else None}
