"""Accuracy against minutes of the evaluator's judges trained on real CIFAR-10 (the baselines of every report), several
budgets and seeds in one run.

    python benchmarks/evaluator_bench.py --data DATA [--judge cnn|resnet] [--budgets default classic]
        [--seeds 0 1 2] [--epochs N] [--per-class 5000] [--precisions float32 mixed_bfloat16] [--no-append]

Each budget × seed trains a fresh classifier (the bundled CNN, or the ResNet second judge with `--judge resnet`) on
the real training split, exactly as `cifar-synth evaluate` trains its baseline, and measures accuracy on the real
test split with and without test-time flip. Budgets alternate within each seed, so load from other processes hits
them alike. The machine may be shared, so wall time alone misleads: the table also gives the process's CPU time
divided by the core count (what the run would take alone on this machine: TensorFlow keeps every core busy during
training), and the median wall seconds of an epoch after the first (which traces the step), whose ratio between
two budgets of one run is the fairest speed comparison. `--epochs` with `--per-class` makes a short speed-only run.
"""

import argparse
import os
import statistics
import time

from _common import markdown_table, publish_results

from cifar_synth.judge_names import CNN, JUDGE_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="real CIFAR-10 (as `--data` of the CLI)")
    parser.add_argument("--judge", choices=JUDGE_NAMES, default=CNN, help="which judge to train")
    parser.add_argument("--budgets", nargs="+", default=["default", "classic"], help="named presets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="override every budget's epochs")
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="run every budget in each of these precisions (default: the budget's own)")
    parser.add_argument("--per-class", type=int, default=None, help="training images per class (default: all)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from cifar_synth.classifier import make_predictor
    from cifar_synth.data import open_real_data
    from cifar_synth.images import subsample_per_class
    from cifar_synth.judges import JUDGES

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    judge = JUDGES[args.judge]
    overrides = {"epochs": args.epochs} if args.epochs else {}
    precisions = [{"precision": p} for p in args.precisions] if args.precisions else [{}]
    configs = [judge.config_class.budget(name, **overrides, **precision)
               for name in args.budgets for precision in precisions]

    started = time.perf_counter()
    real = open_real_data(args.data)
    train, test = real.load("train"), real.load("test")
    if args.per_class:
        train = subsample_per_class(train, args.per_class, 0)
    load_seconds = time.perf_counter() - started
    print(f"loaded {len(train):,} training and {len(test):,} test images in {load_seconds:.0f} s")

    rows, load_before, cores = [], os.getloadavg()[0], os.cpu_count()
    for seed in args.seeds:
        for config in configs:
            timer = EpochTimer()
            wall, cpu = time.perf_counter(), time.process_time()
            model = judge.train(train, config, seed, title=f"{config.budget_name} seed {seed}", callbacks=[timer])
            train_wall, train_cpu = time.perf_counter() - wall, (time.process_time() - cpu) / cores
            plain = (make_predictor(model, False)(test.images)[0].argmax(1) == test.labels).mean()
            flipped = (make_predictor(model, True)(test.images)[0].argmax(1) == test.labels).mean()
            epoch = statistics.median(timer.seconds[1:]) if len(timer.seconds) > 1 else float("nan")
            row = [args.judge, config.budget_name, getattr(config, "architecture", "resnet"), config.precision,
                   "-".join(map(str, config.widths)), config.epochs, seed, f"{flipped:.2%}", f"{plain:.2%}",
                   f"{train_wall / 60:.1f}", f"{train_cpu / 60:.1f}", f"{epoch:.1f}", f"{os.getloadavg()[0]:.1f}"]
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)

    table = markdown_table(
        ["judge", "budget", "architecture", "precision", "widths", "epochs", "seed", "test accuracy (flip TTA)",
         "without TTA", "train min (wall)", "train min (CPU/cores)", "epoch s (median after the first, wall)",
         "load avg after"], rows)
    body = (
        f"{judge.description} trained from scratch on the real training split of `{real.source}` "
        f"({len(train):,} images, {real.kind}), tested on its test split ({len(test):,} images). "
        f"Data loading took {load_seconds:.0f} s (not in the table). 'CPU/cores' is process CPU time divided by the "
        f"{cores} cores: the run's length with the machine to itself. Load average before the first run: "
        f"{load_before:.1f} (other jobs share the cores, which stretches wall time).\n\n{table}"
    )
    publish_results(f"Evaluator judge {args.judge}: real-trained accuracy vs minutes", body, append=not args.no_append)


if __name__ == "__main__":
    main()
