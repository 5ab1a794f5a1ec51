"""Kill `cifar-synth train` with SIGKILL at random moments, resume each time, and check that nothing finished is lost.

    python benchmarks/kill_resume.py [--kills 12] [--epochs 8] [--images 512] [--max-delay 4] [--seed 0] [--work DIR]

Tiny networks on random images (no real data needed). First a second process is started on the same class while
the first trains: it must be refused with a message naming the first one's pid. Then, `--kills` times: start
`python -m cifar_synth train`, wait until it has written this session into config.json (the data are loaded, the
networks built, the lock held), wait a random 0..`--max-delay` seconds (that spans training steps and the saves at
the end of an epoch) and SIGKILL it. After each kill: the resume record's epoch must not have gone back, and what
was being written at that instant (a temporary file beside its target) is noted as the phase. Each next session
must resume from the record (its `from_epoch`). Finally the run is completed without a kill and checked:
history.csv holds epochs 1..N once each with consistent `images_seen`, the checkpoint and generator.keras load.
"Epochs lost" counts history rows written beyond the record at a kill (an epoch killed during its saves).
"""

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, markdown_table, publish_results

TINY = ["--latent-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the finished run (more than the kills "
                                                               "leave finished)")
    parser.add_argument("--images", type=int, default=512, help="training images of the class (steps = images/8)")
    parser.add_argument("--max-delay", type=float, default=4.0, help="longest wait before a kill, in seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--no-publish", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    data = write_data(work / "data", args.images)
    runs = work / "runs"
    run_dir = runs / "dog"
    command = [sys.executable, "-m", "cifar_synth", "train", "--class", "dog", "--data", str(data), "--runs",
               str(runs), "--epochs", str(args.epochs), "--quiet", *TINY]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = random.Random(args.seed)

    refusal = check_second_process_is_refused(command, env, run_dir, work)
    kills = []
    for index in range(args.kills):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_session(run_dir, index + 2, process)  # session 1 was the refusal check's holder
        time.sleep(rng.uniform(0, args.max_delay))
        phase = in_progress(run_dir)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills.append({"phase": phase or in_progress(run_dir) or "training steps", **state(run_dir)})
        print(f"kill {index + 1}: {kills[-1]}", flush=True)

    final = subprocess.run(command, env=env, capture_output=True, text=True)
    if final.returncode != 0:
        sys.exit(f"the final resume failed:\n{final.stderr}")
    sessions = json.loads((run_dir / "config.json").read_text())["sessions"]
    problems = check_resumes(kills, sessions[1:]) + check_finished_run(run_dir, args.epochs, args.images)
    lost = sum(kill["unrecorded_rows"] for kill in kills)
    body = report(args, refusal, kills, lost, problems)
    publish_results("Kill and resume", body, append=not args.no_publish)
    if problems:
        sys.exit(1)


def write_data(root: Path, images: int) -> Path:
    """A class-folder tree: `images` random images of dog, one of every other class (the loader wants them all)."""
    import numpy as np
    from PIL import Image

    from cifar_synth.classes import CLASS_NAMES

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CLASS_NAMES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            count = images if (split, name) == ("train", "dog") else 1
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def check_second_process_is_refused(command, env, run_dir: Path, work: Path) -> str:
    """Start a holder, then a second process on the same class; the second must exit 1 naming the holder."""
    holder = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_session(run_dir, 1, holder)
        second = subprocess.run(command, env=env, capture_output=True, text=True)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    message = " ".join(second.stderr.split())
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
            if len(json.loads((run_dir / "config.json").read_text())["sessions"]) >= count:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    sys.exit(f"train did not start session {count} within {timeout:g} s (a starved machine?)")


def in_progress(run_dir: Path) -> str | None:
    """Which file was being written (a temporary file beside it), if any."""
    for temp in sorted(run_dir.rglob(".*.tmp*")):
        return "writing " + temp.relative_to(run_dir).as_posix().replace(temp.name, temp.name.split(".tmp")[0][1:])
    return None


def state(run_dir: Path) -> dict:
    """The record's epoch and the history rows beyond it, as the kill left them."""
    import csv

    record_path = run_dir / "checkpoint" / "state.json"
    recorded = json.loads(record_path.read_text())["epoch"] if record_path.exists() else 0
    rows = []
    if (run_dir / "history.csv").exists():
        with open(run_dir / "history.csv", newline="") as file:
            rows = [int(row["epoch"]) for row in csv.DictReader(file)]
    return {"recorded_epoch": recorded, "unrecorded_rows": sum(1 for epoch in rows if epoch > recorded)}


def check_resumes(kills: list[dict], sessions: list[dict]) -> list[str]:
    """Each session after a kill starts from that kill's recorded epoch; records never go back."""
    problems = []
    for number, (kill, session) in enumerate(zip(kills, sessions[1:]), start=1):
        if session["from_epoch"] != kill["recorded_epoch"]:
            problems.append(f"after kill {number} the run resumed from epoch {session['from_epoch']}, "
                            f"not the recorded {kill['recorded_epoch']}")
    for number, (before, after) in enumerate(zip(kills, kills[1:]), start=2):
        if after["recorded_epoch"] < before["recorded_epoch"]:
            problems.append(f"kill {number}: the recorded epoch went back from {before['recorded_epoch']} "
                            f"to {after['recorded_epoch']}")
    return problems


def check_finished_run(run_dir: Path, epochs: int, images: int) -> list[str]:
    import csv

    import keras

    from cifar_synth.config import GANConfig
    from cifar_synth.gan import build_gan

    problems = []
    with open(run_dir / "history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    if [int(row["epoch"]) for row in rows] != list(range(1, epochs + 1)):
        problems.append(f"history.csv epochs: {[row['epoch'] for row in rows]}")
    per_epoch = images // 8 * 8
    if [int(row["images_seen"]) for row in rows] != [per_epoch * epoch for epoch in range(1, epochs + 1)]:
        problems.append(f"history.csv images_seen: {[row['images_seen'] for row in rows]}")
    record = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    gan = build_gan(GANConfig(latent_dim=8, g_width=4, d_width=4, batch_size=8))
    gan.load_weights(run_dir / "checkpoint" / record["weights"])
    if int(gan.d_optimizer.iterations) != epochs * (images // 8):
        problems.append(f"the checkpoint's optimizer made {int(gan.d_optimizer.iterations)} steps")
    keras.models.load_model(run_dir / "generator.keras", compile=False)
    if record["epoch"] != epochs:
        problems.append(f"record epoch {record['epoch']}")
    return problems


def report(args, refusal: str, kills: list[dict], lost: int, problems: list[str]) -> str:
    phases = collections.Counter(kill["phase"] for kill in kills)
    rows = [[number, kill["phase"], kill["recorded_epoch"], kill["unrecorded_rows"]]
            for number, kill in enumerate(kills, start=1)]
    return "\n".join([
        f"{len(kills)} SIGKILLs of `train` (tiny networks, {args.images} images = {args.images // 8} steps per "
        f"epoch, random delay 0–{args.max_delay:g} s after the session started), {len(kills)} resumes, then a "
        f"final resume to epoch {args.epochs}.",
        "",
        markdown_table(["kill", "what it interrupted", "recorded epoch after the kill",
                        "history rows beyond the record (trimmed on resume)"], rows),
        "",
        f"- Phases hit: {', '.join(f'{phase} ×{count}' for phase, count in phases.most_common())}.",
        f"- Epochs lost: {lost} in all, each one an epoch killed during its saves (the epoch in progress); "
        "no recorded epoch was lost." if not problems else f"- Problems: {'; '.join(problems)}",
        f"- Final run: history.csv holds epochs 1..{args.epochs} once each with consistent images_seen; the "
        "checkpoint and generator.keras load." if not problems else "",
        f"- A second process on the same class was refused: `{refusal}`",
    ])


if __name__ == "__main__":
    main()
