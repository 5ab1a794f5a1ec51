"""Issue 10, fault 4: SIGKILL `cifar-synth export --overwrite` at random moments; the target must always hold a
whole export, byte-identical to a clean one (the old or the new), and the next export must clear what the kill left.

    python benchmarks/kill_export.py [--kills 12] [--count 300] [--seed 0]

Builds untrained default generators for three classes, exports latent seed 0 then seed 1 to the target (the two
clean references), then repeats: start `export --overwrite` with the other seed, SIGKILL it once it
(with its encoder processes) has used a random amount of CPU time drawn uniformly over one clean run's, and compare
the target with both references (every file's bytes). CPU time rather than wall time, so that a starved machine
does not land every kill in the start-up. The phase each kill hit is read from what it left: a staging folder
without a manifest (writing the new export), with one (written, not yet swapped), the old export in it (after the
swap, deleting the old one), none (start-up, or exiting after the swap). The leftovers and the encoders the kill
orphaned are recorded; the next run must remove the folders, and the encoders must exit by themselves. A final
clean run checks the end state.
"""

import argparse
import collections
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import REPO_ROOT, markdown_table, publish_results, run_for_cpu_seconds
from export_bench import build_runs

CLASSES = ("airplane", "dog", "truck")


def export_command(runs: Path, out: Path, count: int, seed: int) -> list[str]:
    return [sys.executable, "-m", "cifar_synth", "export", "--runs", str(runs), "--out", str(out),
            "--count", str(count), "--seed", str(seed), "--format", "parquet", "--format", "images",
            "--overwrite", "--quiet", *[option for name in CLASSES for option in ("--class", name)]]


def run(command: list[str]) -> tuple[float, str]:
    """Run an export to the end; its CPU seconds (with its encoders') and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"export failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, done.stderr


def snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.is_dir():
        return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def children(pid: int) -> list[int]:
    try:
        return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    except OSError:
        return []


def beside(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")
                  and not p.name.endswith((".lock", ".lock.json")))


def phase_at_kill(target: Path, holds: str) -> str:
    """What the kill interrupted, read from the folders it left beside the target and what the target holds."""
    left = [target.parent / name for name in beside(target)]
    if any(".old-" in path.name for path in left):
        return "swapping (old export set aside)"
    if not left:
        return "exiting after the swap" if "(new)" in holds else "start-up"
    if "(new)" in holds:
        return "deleting the old export after the swap"
    if any((path / "manifest.json").is_file() for path in left):
        return "written, before the swap"
    return "writing the new export"


def orphans_alive(encoders: list[int], seconds: float = 60) -> list[int]:
    """The encoder processes of a killed export still alive after up to `seconds` (they should exit by themselves)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in encoders if Path(f"/proc/{pid}").exists()
                 and b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--count", type=int, default=300, help="images per class (three classes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history "
                                                                 "(docs/benchmarks-history.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-export-") as temp:
        build_runs(Path(temp) / "runs")
        proof = prove(Path(temp) / "runs", Path(temp), args.kills, args.count, args.seed)
    publish_results("Export --overwrite under SIGKILL", report(proof), append=not args.no_append)
    if not proof.passed:
        sys.exit(1)


@dataclass(frozen=True)
class Proof:
    """What `prove` did and found."""

    count: int
    clean_cpu: float  # CPU seconds of one clean export, its encoders' included
    rows: list[list]  # per kill: number, CPU seconds, phase, what the target holds, leftovers, encoders that exited
    failures: int  # kills after which the target was not one whole export
    orphaned: int  # encoders still alive 60 s after their export was killed
    final_ok: bool  # the next clean export left the expected export and nothing beside it
    removed: int  # leftover folders the final export reported removing

    @property
    def passed(self) -> bool:
        return not self.failures and not self.orphaned and self.final_ok


def prove(runs: Path, scratch: Path, kills: int, count: int, seed: int) -> Proof:
    """Export `CLASSES` of `runs` (`count` images each) into `scratch`, SIGKILL `kills` overwriting exports at
    random moments and check the target after each and after a final clean export."""
    moments = random.Random(seed)
    rows, failures, orphaned = [], 0, 0
    target = scratch / "work" / "export"
    run(export_command(runs, target, count, 0))
    references = {0: snapshot(target)}  # what a clean export of each seed holds: every kill must leave one of them
    clean_cpu, _ = run(export_command(runs, target, count, 1))
    references[1] = snapshot(target)
    current = 1

    for kill in range(1, kills + 1):
        seed = 1 - current
        delay = moments.uniform(0, clean_cpu)
        child = subprocess.Popen(export_command(runs, target, count, seed), cwd=REPO_ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running = run_for_cpu_seconds(child, delay)
        encoders = children(child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = snapshot(target)
        holds = next((f"seed {s} ({'new' if s == seed else 'old'})" for s, files in references.items()
                      if files == state), None)
        if holds is None:
            failures += 1
            holds = "MISSING" if state is None else "NOT A WHOLE EXPORT"
        if holds.startswith(f"seed {seed}"):
            current = seed
        phase = phase_at_kill(target, holds) if running else "finished before the kill"
        left = beside(target)
        size = sum(f.stat().st_size for name in left for f in (target.parent / name).rglob("*") if f.is_file())
        alive = orphans_alive(encoders)
        rows.append([kill, f"{delay:.1f}", phase, holds, f"{len(left)} ({size / 1e6:.1f} MB)",
                     f"{len(encoders) - len(alive)} of {len(encoders)}"])
        print(rows[-1], flush=True)
        orphaned += len(alive)
        for pid in alive:  # do not leave them behind
            os.kill(pid, signal.SIGKILL)

    _, stderr = run(export_command(runs, target, count, 1 - current))
    final_ok = snapshot(target) == references[1 - current] and beside(target) == []
    removed = stderr.count("left by a killed export")
    shutil.rmtree(scratch / "work", ignore_errors=True)
    return Proof(count, clean_cpu, rows, failures, orphaned, final_ok, removed)


def report(proof: Proof) -> str:
    table = markdown_table(["kill", "after CPU s", "phase at the kill", "target holds", "left beside the target",
                            "orphaned encoders that exited by themselves"], proof.rows)
    phases = collections.Counter(row[2] for row in proof.rows)
    return (
        f"{len(proof.rows)} SIGKILLs of `cifar-synth export --overwrite` ({len(CLASSES)} classes × {proof.count} "
        f"images, Parquet and images/, untrained default generators), each after a CPU time drawn uniformly over one "
        f"clean run's ({proof.clean_cpu:.1f} CPU s with its encoders, TensorFlow start-up included). Phases hit: "
        f"{', '.join(f'{phase} ×{count}' for phase, count in phases.most_common())}. Target never partial or missing: "
        f"**{'yes' if proof.failures == 0 else f'NO ({proof.failures} failures)'}**. The next clean export restored "
        f"the expected state: **{'yes' if proof.final_ok else 'NO'}** (it reported removing {proof.removed} leftover "
        f"folder(s); earlier ones were removed by the killed runs that followed them). Every encoder process a kill "
        f"orphaned exited by itself within 60 s: "
        f"**{'yes' if proof.orphaned == 0 else f'NO ({proof.orphaned} did not)'}**.\n\n{table}"
    )


if __name__ == "__main__":
    main()
