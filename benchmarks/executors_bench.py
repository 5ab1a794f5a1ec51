"""Executors: the same classes and epochs trained one after another, with `--parallel 2`, and as two Ray tasks.

    python benchmarks/executors_bench.py --data /tmp/cifar/cifar10-jpeg [--classes cat dog deer horse] [--epochs 2]
        [-- MORE TRAIN OPTIONS]

Each mode is one `cifar-synth train` process into a fresh runs directory, timed from start to exit (so process and
Ray start-up count, as a user waits for them): sequential (one process, TensorFlow's default threads), local
`--parallel 2` (two classes at a time, one thread each), and `--executor ray --parallel 2 --cpus-per-class 1` on a
local Ray started by the command. Images/s is the real images trained by all classes (from their resume records)
over that wall time; ratios are against the sequential mode measured in the same run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import markdown_table, publish_results

MODES = {
    "sequential": [],
    "local --parallel 2": ["--parallel", "2", "--cpus-per-class", "1"],
    "ray, 2 tasks": ["--executor", "ray", "--parallel", "2", "--cpus-per-class", "1"],
}


def run_mode(extra: list[str], args, runs: Path) -> tuple[float, int]:
    """Wall seconds of one `cifar-synth train` and the real images its classes trained."""
    command = [sys.executable, "-m", "cifar_synth", "train", *(f"--class={name}" for name in args.classes),
               "--epochs", str(args.epochs), "--data", args.data, "--runs", str(runs), "--quiet", *args.train_options, *extra]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    seconds = time.perf_counter() - started
    images = sum(json.loads((runs / name / "checkpoint" / "state.json").read_text())["images_seen"]
                 for name in args.classes)
    return seconds, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real CIFAR-10 (archive, batches folder or class-folder tree)")
    parser.add_argument("--classes", nargs="+", default=["cat", "dog", "deer", "horse"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-append", dest="append", action="store_false", help="print only, do not append")
    parser.add_argument("train_options", nargs=argparse.REMAINDER, help="after --: more `cifar-synth train` options")
    args = parser.parse_args()
    args.train_options = [option for option in args.train_options if option != "--"]

    results = {}
    with tempfile.TemporaryDirectory(prefix="executors-bench-") as work:
        for mode, extra in MODES.items():
            results[mode] = run_mode(extra, args, Path(work) / mode.split()[0])
    base_seconds, base_images = results["sequential"]
    rows = [[mode, f"{seconds:.0f}", f"{images / seconds:.0f}", f"{base_seconds / seconds:.2f}×"]
            for mode, (seconds, images) in results.items()]
    body = (f"{len(args.classes)} classes ({', '.join(args.classes)}), {args.epochs} epochs each, "
            f"{' '.join(args.train_options) or 'default networks'}; wall time includes process and Ray start-up.\n\n"
            + markdown_table(["mode", "wall s", "real images/s", "speed-up vs sequential"], rows))
    publish_results("Executors: sequential vs --parallel 2 vs Ray", body, append=args.append)


if __name__ == "__main__":
    main()
