"""Kill `cifar-synth train` with SIGKILL at random moments, resume each time, and check that nothing finished is lost.

    python benchmarks/kill_resume.py [--kills 12] [--epochs 8] [--images 256] [--max-delay 2.5] [--seed 0] [--work DIR]

Tiny networks on random images (no real data needed). First a second process is started on the same class while
the first holds it: it must be refused with a message naming the first one's pid. Then, `--kills` times: start
`python -m cifar_synth train`, wait until it has written this session into config.json (the data are loaded, the
networks built, the lock held), let it run for a random 0..`--max-delay` seconds of its own CPU time (that spans
the first step's tracing, training steps and the saves at the end of an epoch; CPU time, so that a starved machine
does not land every kill in the start-up) and SIGKILL it. After each kill the phase it hit is read from what the
kill left: a temporary file beside its target (that file was being written), history rows beyond the resume record
(between history.csv and the record), or a record newer than losses.png (the saves after the record); else
training steps. The resume record's epoch must not have gone back, and each next session must resume from it (its
`from_epoch`). Finally the run is completed without a kill and checked: history.csv holds epochs 1..N once each
with consistent `images_seen`, the checkpoint (whose optimizers made exactly N epochs of steps) and generator.keras
load. "Epochs lost" counts history rows written beyond the record at a kill (an epoch killed during its saves).
"""

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import REPO_ROOT, markdown_table, publish_results, run_for_cpu_seconds

from cifar_synth.runs import RunPaths, read_config, read_history, read_record

TINY = ["--latent-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the finished run (more than the kills "
                                                               "leave finished)")
    parser.add_argument("--images", type=int, default=256, help="training images of the class (steps = images/8)")
    parser.add_argument("--max-delay", type=float, default=2.5, help="longest run before a kill, in CPU seconds of "
                                                                    "the train process after its session started")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history "
                                                                 "(docs/benchmarks-history.md)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    proof = prove(write_data(work / "data", args.images), work / "runs", args.images, args.kills, args.epochs,
                  args.max_delay, args.seed)
    publish_results("Kill and resume", report(proof), append=not args.no_append)
    if proof.problems:
        sys.exit(1)


@dataclass(frozen=True)
class Proof:
    """What `prove` did and found; `problems` is empty when nothing finished was lost."""

    images: int
    epochs: int
    max_delay: float
    refusal: str  # the second process's error message
    kills: list[dict]  # per kill: delay, phase, recorded_epoch, unrecorded_rows
    problems: list[str]


def prove(data: Path, runs: Path, images: int, kills: int, epochs: int, max_delay: float, seed: int) -> Proof:
    """Train dog (`images` training images in `data`) into `runs`: a refused second process, then `kills` SIGKILLs
    at random moments, each followed by a resume, then a final resume to `epochs`; check what the run kept."""
    run_dir = runs / "dog"
    command = [sys.executable, "-m", "cifar_synth", "train", "--class", "dog", "--data", str(data), "--runs",
               str(runs), "--epochs", str(epochs), "--quiet", *TINY,
               # One run on all its images: the proof is about resuming, not the recipe.
               "--init-from", "none", "--validation-fraction", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = random.Random(seed)

    refusal = check_second_process_is_refused(command, env, run_dir)
    start = state(run_dir)  # what the refusal check's holder, killed at once, left
    done = []
    for index in range(kills):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_session(run_dir, index + 2, process)  # session 1 was the refusal check's holder
        delay = rng.uniform(0, max_delay)
        if not run_for_cpu_seconds(process, delay):
            sys.exit(f"train finished (exit {process.returncode}) before kill {index + 1}: raise --epochs")
        process.send_signal(signal.SIGKILL)
        process.wait()
        done.append({"delay": delay, "phase": phase_at_kill(run_dir), **state(run_dir)})
        print(f"kill {index + 1}: {done[-1]}", flush=True)

    final = subprocess.run(command, env=env, capture_output=True, text=True)
    if final.returncode != 0:
        sys.exit(f"the final resume failed:\n{final.stderr}")
    sessions = read_config(run_dir)["sessions"]
    problems = check_resumes(start, done, sessions[1:]) + check_finished_run(run_dir, epochs, images)
    return Proof(images, epochs, max_delay, refusal, done, problems)


def write_data(root: Path, images: int) -> Path:
    """A class-folder tree: `images` random images of dog, one of every other class (the loader wants them all)."""
    import numpy as np
    from PIL import Image

    from cifar_synth.classes import CIFAR10

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CIFAR10.names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            count = images if (split, name) == ("train", "dog") else 1
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def check_second_process_is_refused(command, env, run_dir: Path) -> str:
    """Start a holder, then a second process on the same class; the second must exit 1 naming the holder.

    The holder is stopped (SIGSTOP) once its session starts, so that it still holds the lock but does not use up
    the run's epochs while the second process starts; then it is killed.
    """
    holder = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_session(run_dir, 1, holder)
        holder.send_signal(signal.SIGSTOP)
        second = subprocess.run(command, env=env, capture_output=True, text=True)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    message = " ".join(second.stderr.split())
    message = message[message.find("Error:"):]  # after TensorFlow's start-up log lines
    if second.returncode != 1 or f"is in use by process {holder.pid}" not in message:
        sys.exit(f"the second process was not refused (exit {second.returncode}):\n{second.stderr}")
    return message


def wait_for_session(run_dir: Path, count: int, process: subprocess.Popen, timeout: float = 1800) -> None:
    """Until config.json lists `count` sessions: the process holds the lock and is about to train."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"train exited with {process.returncode} before its session started")
        try:
            if len(read_config(run_dir)["sessions"]) >= count:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    sys.exit(f"train did not start session {count} within {timeout:g} s (a starved machine?)")


def phase_at_kill(run_dir: Path) -> str:
    """What the kill interrupted, read from what it left (an epoch writes its files in the order of docs/train.md).

    Called before the next session trims the run directory, so every temporary file is this kill's.
    """
    temps = sorted(run_dir.rglob(".*.tmp*"))
    if temps:  # mkstemp names: `.<stem>.tmp<random><suffixes>` beside `<stem><suffixes>`
        stem, rest = temps[0].name[1:].split(".tmp", 1)
        target = temps[0].parent.relative_to(run_dir) / (stem + rest[rest.find("."):] if "." in rest else stem)
        return f"saves: writing {target.as_posix()}"
    if state(run_dir)["unrecorded_rows"]:
        return "saves: between history.csv and the record"
    record, losses = RunPaths(run_dir).record, RunPaths(run_dir).losses
    if record.exists() and (not losses.exists() or losses.stat().st_mtime_ns < record.stat().st_mtime_ns):
        return "saves: after the record"
    return "training steps"


def state(run_dir: Path) -> dict:
    """The record's epoch and the history rows beyond it, as the kill left them."""
    record = read_record(run_dir)
    recorded = record.epoch if record else 0
    return {"recorded_epoch": recorded,
            "unrecorded_rows": sum(1 for row in read_history(run_dir) if int(row["epoch"]) > recorded)}


def check_resumes(start: dict, kills: list[dict], sessions: list[dict]) -> list[str]:
    """Each session starts from the record the kill before it left; records never go back."""
    problems = []
    for number, (kill, session) in enumerate(zip([start, *kills], sessions), start=0):
        if session["from_epoch"] != kill["recorded_epoch"]:
            after = f"kill {number}" if number else "the refusal check's holder was killed"
            problems.append(f"after {after} the run resumed from epoch {session['from_epoch']}, "
                            f"not the recorded {kill['recorded_epoch']}")
    for number, (before, after) in enumerate(zip([start, *kills], kills), start=1):
        if after["recorded_epoch"] < before["recorded_epoch"]:
            problems.append(f"kill {number}: the recorded epoch went back from {before['recorded_epoch']} "
                            f"to {after['recorded_epoch']}")
    if len(sessions) != len(kills) + 1:
        problems.append(f"{len(sessions)} sessions after the refusal check, not {len(kills) + 1}")
    return problems


def check_finished_run(run_dir: Path, epochs: int, images: int) -> list[str]:
    import keras

    from cifar_synth.config import GANConfig
    from cifar_synth.gan import build_gan

    problems = []
    rows = read_history(run_dir)
    if [int(row["epoch"]) for row in rows] != list(range(1, epochs + 1)):
        problems.append(f"history.csv epochs: {[row['epoch'] for row in rows]}")
    per_epoch = images // 8 * 8
    if [int(row["images_seen"]) for row in rows] != [per_epoch * epoch for epoch in range(1, epochs + 1)]:
        problems.append(f"history.csv images_seen: {[row['images_seen'] for row in rows]}")
    paths, record = RunPaths(run_dir), read_record(run_dir)
    gan = build_gan(GANConfig(latent_dim=8, g_width=4, d_width=4, batch_size=8))
    gan.load_weights(paths.checkpoint / record.weights)
    if int(gan.d_optimizer.iterations) != epochs * (images // 8):
        problems.append(f"the checkpoint's optimizer made {int(gan.d_optimizer.iterations)} steps")
    keras.models.load_model(paths.generator, compile=False)
    if record.epoch != epochs:
        problems.append(f"record epoch {record.epoch}")
    return problems


def report(proof: Proof) -> str:
    kills, problems = proof.kills, proof.problems
    lost = sum(kill["unrecorded_rows"] for kill in kills)  # each an epoch killed during its saves
    phases = collections.Counter(kill["phase"] for kill in kills)
    in_saves = sum(count for phase, count in phases.items() if phase.startswith("saves"))
    rows = [[number, f"{kill['delay']:.2f}", kill["phase"], kill["recorded_epoch"], kill["unrecorded_rows"]]
            for number, kill in enumerate(kills, start=1)]
    return "\n".join([
        f"{len(kills)} SIGKILLs of `train` (tiny networks, {proof.images} images = {proof.images // 8} steps per "
        f"epoch), each after a random 0–{proof.max_delay:g} s of the process's CPU time once its session started; "
        f"{len(kills)} resumes, then a final resume to epoch {proof.epochs}.",
        "",
        markdown_table(["kill", "after CPU s", "what it interrupted", "recorded epoch after the kill",
                        "history rows beyond the record (trimmed on resume)"], rows),
        "",
        f"- Phases hit: {', '.join(f'{phase} ×{count}' for phase, count in phases.most_common())}; "
        f"{in_saves} of {len(kills)} kills during the end-of-epoch saves.",
        f"- Epochs lost: {lost} in all, each one an epoch killed during its saves (the epoch in progress); "
        "no recorded epoch was lost." if not problems else f"- Problems: {'; '.join(problems)}",
        f"- Final run: history.csv holds epochs 1..{proof.epochs} once each with consistent images_seen; the "
        "checkpoint (its optimizers made exactly that many epochs of steps) and generator.keras load."
        if not problems else "",
        f"- A second process on the same class was refused: `{proof.refusal}`",
    ])


if __name__ == "__main__":
    main()
