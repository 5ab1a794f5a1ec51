"""Export throughput and peak memory: images per second, CPU time and peak RSS of `cifar-synth export`.

    python benchmarks/export_bench.py [--totals 50000] [--formats parquet] [--repeats 3] [--code DIR ...]

Builds ten untrained generators of the default architecture, in the precision training saves them with
(`GANConfig().with_resolved_precision`), in a temporary runs directory, then runs the export CLI as a subprocess for
each (format, total images across the ten classes), `--repeats` times, reporting medians. Wall time, CPU time
(user + system, the encoder processes included) and peak RSS come from wait4(). A 10-image run measures the
start-up (TensorFlow import, loading ten generators, starting the encoders), so "after start-up" excludes it.
Untrained weights cost the same to run as trained ones; their PNGs may compress differently from real samples.

`--code DIR …` runs the children on other checkouts too (PYTHONPATH=DIR), in alternating rounds, so that load from
other processes hits each alike: e.g. the commit before a change against the working tree. The generator alone is
timed in this process at the same batch size and set against its FLOP bound (this machine's float32 matmul rate
divided by the generator's FLOPs per image, counted from its layer shapes).
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, markdown_table, publish_results

from cifar_synth.classes import CIFAR10
from cifar_synth.runs import RunPaths


def build_runs(runs: Path) -> str:
    """Ten untrained default generators in runs/<class>/, as `train` leaves them; returns a description of the
    architecture."""
    import keras

    from cifar_synth.config import GANConfig
    from cifar_synth.gan import build_generator

    # Resolved as training resolves it, so the generators compute in the precision a trained one saves with.
    config = GANConfig().with_resolved_precision(gpu=False)
    for index, class_name in enumerate(CIFAR10.names):
        keras.utils.set_random_seed(index)
        paths = RunPaths(runs / class_name)
        paths.root.mkdir(parents=True)
        build_generator(config).save(paths.generator)
        paths.config.write_text(json.dumps({"class_name": class_name, "gan": config.to_dict()}))
    return f"cifar_synth.gan default: latent_dim {config.latent_dim}, g_width {config.g_width}, {config.precision}"


def run_export(code: Path, runs: Path, out: Path, per_class: int, fmt: str, batch_size: int | None) -> dict:
    """Wall and CPU seconds and peak RSS (bytes) of one `cifar-synth export` child process running `code`."""
    command = [sys.executable, "-m", "cifar_synth", "export", "--runs", str(runs), "--out", str(out),
               "--count", str(per_class), "--format", fmt, "--overwrite",
               *(["--batch-size", str(batch_size)] if batch_size else [])]
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(command, cwd=code, stdout=log, stderr=log, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = code_ = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        if code_:
            log.seek(0)
            sys.exit(f"export failed ({code_}): {' '.join(command)}\n{log.read().decode()[-3000:]}")
    # wait4's usage covers the child and the descendants it reaped (the encoder processes).
    return {"wall": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss * 1024}


def generator_rate(runs: Path, batch_size: int, batches: int = 10) -> tuple[float, float, float]:
    """(images/s of the generator alone at `batch_size`, MFLOP per image, float32 matmul GFLOP/s), medians of 3."""
    import keras
    import numpy as np
    from throughput import forward_flops, matmul_seconds

    generator = keras.models.load_model(RunPaths(runs / "dog").generator, compile=False)
    latents = np.random.default_rng(0).standard_normal((batch_size, generator.input_shape[1]), dtype=np.float32)
    np.asarray(generator(latents, training=False))
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(batches):
            np.asarray(generator(latents, training=False))
        rates.append(batch_size * batches / (time.perf_counter() - started))
    gflops = 2 * 2048**3 / matmul_seconds(2048, 5) / 1e9
    return statistics.median(rates), forward_flops(generator) / 1e6, gflops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--totals", type=int, nargs="+", default=[50_000],
                        help="images across all ten classes (each a multiple of 10)")
    parser.add_argument("--formats", nargs="+", default=["parquet"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: each checkout's own default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, nargs="+", default=[REPO_ROOT],
                        help="checkouts to run (default: this one)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history")
    args = parser.parse_args()

    results: dict[tuple, list[dict]] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="export-bench-") as temp:
        runs, out = Path(temp) / "runs", Path(temp) / "out"
        architecture = build_runs(runs)
        for round_ in range(args.repeats):
            for fmt in args.formats:
                for total in [10, *args.totals]:
                    for code in args.code:
                        result = run_export(code, runs, out, total // 10, fmt, args.batch_size)
                        result["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
                        result["data"] = _data_digest(out, fmt)
                        results.setdefault((code, fmt, total), []).append(result)
                        print(f"round {round_ + 1}: {code} {fmt} {total:,}: {result['wall']:.1f} s wall, "
                              f"{result['cpu']:.1f} s CPU, peak RSS {result['rss'] / 2**20:.0f} MiB", flush=True)
        batch_size = args.batch_size or _default_batch_size()
        generated, mflop, gflops = generator_rate(runs, batch_size)

    rows = []
    for (code, fmt, total), runs_ in results.items():
        if total == 10:
            continue
        wall = statistics.median(r["wall"] for r in runs_)
        startup = statistics.median(r["wall"] for r in results[(code, fmt, 10)])
        cpu = statistics.median(r["cpu"] for r in runs_)
        rows.append([_label(code), fmt, f"{total:,}", f"{wall:.1f}", f"{startup:.1f}", f"{total / wall:,.0f}",
                     f"{(total - 10) / (wall - startup):,.0f}", f"{cpu / total * 1e3:.2f}",
                     f"{max(r['rss'] for r in runs_) / 2**20:,.0f}",
                     f"{statistics.median(r['bytes'] for r in runs_) / 1e6:,.1f}"])
    table = markdown_table(["code", "format", "images", "wall s", "start-up s", "images/s end to end",
                            "images/s after start-up", "CPU ms/image", "peak RSS MiB", "output MB"], rows)
    bound = gflops * 1e3 / mflop
    identical = all(len({r["data"] for (_, f, t), runs_ in results.items() if (f, t) == key for r in runs_}) == 1
                    for key in {(f, t) for _, f, t in results})
    body = (
        f"Ten untrained generators ({architecture}), batch size {args.batch_size or 'each checkout’s default'}, "
        f"one `cifar-synth export` subprocess per run, medians of {args.repeats} alternating rounds; start-up is the "
        f"median 10-image run. Load average (1 min) before / after: {load:.1f} / {os.getloadavg()[0]:.1f} "
        f"(other processes share the cores). Data files byte-identical across every run and checkout of the same "
        f"format and size: **{'yes' if identical else 'NO'}**.\n\n{table}\n\n"
        f"The generator alone, in this process at batch {batch_size}: {generated:,.0f} images/s; {mflop:.1f} MFLOP "
        f"per image and a float32 matmul rate of {gflops:.0f} GFLOP/s give a FLOP bound of {bound:,.0f} images/s "
        f"(it computes in bfloat16 where the CPU has it, whose bound is higher), so the generator runs at "
        f"{generated / bound:.0%} of the float32 bound."
    )
    publish_results("Export throughput and peak memory", body, append=not args.no_append)


def _data_digest(out: Path, fmt: str) -> str:
    """sha256 over the data files of one format (their bytes, in name order), wherever the checkout puts them."""
    suffix = {"parquet": ".parquet", "csv": ".csv", "images": ".png"}[fmt]
    digest = hashlib.sha256()
    for path in sorted(out.rglob(f"*{suffix}"), key=lambda path: path.relative_to(out).parts[1:]):
        if path.name != "samples.png":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _default_batch_size() -> int:
    from cifar_synth.exporter import DEFAULT_BATCH_SIZE

    return DEFAULT_BATCH_SIZE


def _label(code: Path) -> str:
    """The checkout's commit (with +dirty), or its path when it is not a git work tree."""
    try:
        commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"`{commit}{'+dirty' if dirty else ''}`"
    except (OSError, subprocess.CalledProcessError):
        return str(code)


if __name__ == "__main__":
    main()
