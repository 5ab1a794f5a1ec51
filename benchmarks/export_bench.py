"""Export throughput and peak memory: images per second and peak RSS of `cifar-synth export` per format and size.

    python benchmarks/export_bench.py [--totals 10000 50000] [--formats parquet csv] [--batch-size 256]

Builds ten untrained generators of the default architecture (`cifar_synth.gan.build_generator(GANConfig())`) in a
temporary runs directory, then runs the export CLI as a subprocess for each (format, total images across the ten
classes), reading the child's own peak RSS from wait4(). Untrained weights cost the same to run as trained ones; the
PNGs of untrained output may compress differently from real samples, so file sizes are indicative only.
A 10-image run measures the fixed cost (TensorFlow import, loading ten generators), so the steady rate excludes it.
Peak RSS must not grow with the total: the export streams batches to disk.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, markdown_table, publish_results

from cifar_synth.classes import CLASS_NAMES


def build_runs(runs: Path) -> str:
    """Ten untrained default generators as runs/<class>/generator.keras; returns a description of the architecture."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        from cifar_synth.gan import GANConfig, build_generator
    except ImportError:  # before the GAN module existed: the same DCGAN shape, built here
        config, build, description = {"latent_dim": 100}, _dcgan_generator, "DCGAN fallback, latent_dim 100"
    else:
        config = GANConfig().to_dict()
        build = lambda: build_generator(GANConfig())  # noqa: E731
        description = f"cifar_synth.gan default, latent_dim {config['latent_dim']}, g_width {config['g_width']}"
    for index, class_name in enumerate(CLASS_NAMES):
        keras.utils.set_random_seed(index)
        (runs / class_name).mkdir(parents=True)
        build().save(runs / class_name / "generator.keras")
        (runs / class_name / "config.json").write_text(json.dumps({"class_name": class_name, **config}))
    return description


def _dcgan_generator():
    from keras import Input, Sequential, layers

    return Sequential([
        Input((100,)), layers.Dense(4 * 4 * 256, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.Reshape((4, 4, 256)),
        layers.Conv2DTranspose(128, 4, 2, padding="same", use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2DTranspose(64, 4, 2, padding="same", use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2DTranspose(3, 4, 2, padding="same", activation="tanh"),
    ])


def run_export(runs: Path, out: Path, per_class: int, fmt: str, batch_size: int) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one `cifar-synth export` child process."""
    command = [sys.executable, "-m", "cifar_synth", "export", "--runs", str(runs), "--out", str(out),
               "--count", str(per_class), "--format", fmt, "--batch-size", str(batch_size), "--overwrite"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        if code:
            log.seek(0)
            sys.exit(f"export failed ({code}): {' '.join(command)}\n{log.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--totals", type=int, nargs="+", default=[10_000, 50_000],
                        help="images across all ten classes (each a multiple of 10)")
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()

    rows, load = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="export-bench-") as temp:
        runs, out = Path(temp) / "runs", Path(temp) / "out"
        architecture = build_runs(runs)
        for fmt in args.formats:
            fixed_seconds, fixed_rss = run_export(runs, out, 1, fmt, args.batch_size)
            print(f"{fmt}: 10 images (fixed cost) {fixed_seconds:.1f} s, peak RSS {fixed_rss / 2**20:.0f} MiB")
            for total in args.totals:
                seconds, rss = run_export(runs, out, total // 10, fmt, args.batch_size)
                size = sum(file.stat().st_size for file in out.rglob("*") if file.is_file())
                steady = (total - 10) / (seconds - fixed_seconds)
                rows.append([fmt, f"{total:,}", f"{seconds:.1f}", f"{total / seconds:,.0f}", f"{steady:,.0f}",
                             f"{rss / 2**20:,.0f}", f"{size / 1e6:,.1f}"])
                print(f"{fmt}: {total:,} images in {seconds:.1f} s = {total / seconds:,.0f} images/s "
                      f"({steady:,.0f}/s after the fixed cost), peak RSS {rss / 2**20:,.0f} MiB, {size / 1e6:,.1f} MB")

    table = markdown_table(["format", "images", "wall s", "images/s", "images/s after fixed cost",
                            "peak RSS MiB", "output MB"], rows)
    body = (
        f"Ten untrained generators ({architecture}), `--batch-size {args.batch_size}`, one `cifar-synth export` "
        f"subprocess per row; peak RSS from wait4(). Load average before / after: {load:.1f} / "
        f"{os.getloadavg()[0]:.1f} (other processes share the cores).\n\n{table}"
    )
    publish_results("Export throughput and peak memory", body, append=not args.no_append)


if __name__ == "__main__":
    main()
