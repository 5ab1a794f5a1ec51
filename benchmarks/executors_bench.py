"""Executors: the same classes and epochs trained one after another, with `--parallel 2`, and as two Ray tasks.

    python benchmarks/executors_bench.py --data DATA [--classes cat dog deer horse] [--epochs 2]
        [--rounds 3] [--evaluate EXPORT [--evaluate-epochs N]] [-- MORE TRAIN OPTIONS]

Each mode is one `cifar-synth train` process into a fresh runs directory, timed from start to exit (so process and
Ray start-up count, as a user waits for them): sequential (one process, TensorFlow's default threads), local
`--parallel 2` (two classes at a time, one thread each), and `--executor ray --parallel 2 --cpus-per-class 1` on a
local Ray started by the command. Images/s is the real images trained by all classes (from their resume records)
over that wall time. The modes alternate within each round, so load from other processes hits them alike; the table
gives medians over the rounds, and ratios against the sequential mode of the same round.

`--evaluate EXPORT` also times `cifar-synth evaluate` of that export (the bundled CNN only, `--budget quick`,
`--no-cache` so the real-trained CNN trains too): its two classifiers one after another, and as two parallel local
tasks, with the evaluator's own timings from report.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import markdown_table, publish_results

from cifar_synth.runs import read_record

TRAIN_MODES = {
    "sequential": [],
    "local --parallel 2": ["--parallel", "2", "--cpus-per-class", "1"],
    "ray, 2 tasks": ["--executor", "ray", "--parallel", "2", "--cpus-per-class", "1"],
}
EVALUATE_MODES = {
    "evaluate, sequential": [],
    "evaluate, local --parallel 2": ["--executor", "local", "--parallel", "2", "--cpus-per-task", "1"],
}


def timed(command: list[str]) -> float:
    """Wall seconds of one CLI process, run to its exit."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    return time.perf_counter() - started


def run_train(extra: list[str], args, runs: Path) -> tuple[float, int]:
    """Wall seconds of one `cifar-synth train` and the real images its classes trained."""
    seconds = timed([sys.executable, "-m", "cifar_synth", "train", *(f"--class={name}" for name in args.classes),
                     "--epochs", str(args.epochs), "--data", args.data, "--runs", str(runs), "--quiet",
                     *args.train_options, *extra])
    images = sum(read_record(runs / name).images_seen for name in args.classes)
    return seconds, images


def run_evaluate(extra: list[str], args, out: Path) -> tuple[float, int]:
    """Wall seconds of one `cifar-synth evaluate` and the seconds its classifiers trained, from its report."""
    seconds = timed([sys.executable, "-m", "cifar_synth", "evaluate", "--synthetic", args.evaluate, "--data", args.data,
                     "--budget", "quick", "--judges", "cnn", "--no-cache", "--no-inception-fid", "--out", str(out),
                     # --no-cache still stores the baseline it trained: keep it out of the user's cache
                     "--cache-dir", str(out / "cache"),
                     "--quiet", *(["--epochs", str(args.evaluate_epochs)] if args.evaluate_epochs else []), *extra])
    timings = json.loads((out / "report.json").read_text())["timings"]
    return seconds, round(timings.get("parallel_training_seconds")
                          or timings["baseline_seconds"] + timings["synthetic_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real CIFAR-10 (archive, batches folder or class-folder tree)")
    parser.add_argument("--classes", nargs="+", default=["cat", "dog", "deer", "horse"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; every mode runs once per round")
    parser.add_argument("--evaluate", metavar="EXPORT", help="also time `cifar-synth evaluate` of this export")
    parser.add_argument("--evaluate-epochs", type=int, help="the evaluated classifiers' epochs (default: the quick preset's)")
    parser.add_argument("--no-append", dest="append", action="store_false", help="print only, do not append")
    parser.add_argument("train_options", nargs=argparse.REMAINDER, help="after --: more `cifar-synth train` options")
    args = parser.parse_args()
    args.train_options = [option for option in args.train_options if option != "--"]

    modes = {mode: (run_train, extra) for mode, extra in TRAIN_MODES.items()}
    if args.evaluate:
        modes |= {mode: (run_evaluate, extra) for mode, extra in EVALUATE_MODES.items()}
    results: dict[str, list[tuple[float, int]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="executors-bench-") as work:
        for round_ in range(args.rounds):
            for number, (mode, (run, extra)) in enumerate(modes.items()):
                results[mode].append(run(extra, args, Path(work) / f"{round_}-{number}"))
                # Every run's figures as they come: an interrupted benchmark still leaves its finished rounds.
                wall, figure = results[mode][-1]
                unit = "classifier seconds" if run is run_evaluate else "real images"
                print(f"round {round_ + 1}/{args.rounds}, {mode}: {wall:.1f} s wall, {figure} {unit}", flush=True)

    def baseline(mode: str) -> str:
        return "evaluate, sequential" if mode.startswith("evaluate") else "sequential"

    rows = []
    for mode, runs in results.items():
        seconds = [wall for wall, _ in runs]
        speedups = [base_wall / wall for (base_wall, _), (wall, _) in zip(results[baseline(mode)], runs)]
        figure = (f"{statistics.median(second for _, second in runs):.0f} s classifiers" if mode.startswith("evaluate")
                  else f"{statistics.median(images / wall for wall, images in runs):.0f} real images/s")
        rows.append([mode, f"{statistics.median(seconds):.0f} ({min(seconds):.0f}–{max(seconds):.0f})", figure,
                     f"{statistics.median(speedups):.2f}×"])
    body = (f"{len(args.classes)} classes ({', '.join(args.classes)}), {args.epochs} epochs each, "
            f"{' '.join(args.train_options) or 'default networks'}; medians of {args.rounds} rounds (range in "
            "brackets), the modes alternating within each round; wall time includes process and Ray start-up."
            + (f" Evaluate: `{args.evaluate}`, `--budget quick --judges cnn --no-cache`"
               f"{f' --epochs {args.evaluate_epochs}' if args.evaluate_epochs else ''}; its figure is the seconds "
               "the two classifiers trained (report.json timings)." if args.evaluate else "") + "\n\n"
            + markdown_table(["mode", "wall s", "throughput", "speed-up (median of the rounds' ratios)"], rows))
    publish_results("Executors: sequential vs --parallel 2 vs Ray", body, append=args.append)


if __name__ == "__main__":
    main()
