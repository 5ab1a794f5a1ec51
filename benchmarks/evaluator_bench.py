"""Accuracy against minutes of the evaluator's judges trained on real CIFAR-10 (the baselines of every report).

    python benchmarks/evaluator_bench.py --data DATA [--judge cnn|resnet]
        [--budgets quick default thorough] [--epochs 6 10] [--widths 32 64 128 256] [--per-class 5000] [--seed 0]
        [--no-append]

Each budget (a named preset, or each of `--epochs` with `--widths`) trains a fresh classifier (the bundled CNN, or
the ResNet second judge with `--judge resnet`) on the real training
split, exactly as `cifar-synth evaluate` trains its baseline, and measures accuracy on the real test split with and
without test-time flip. The machine may be shared, so wall time alone misleads: the table also gives the process's
CPU time divided by the core count, which is what the run would take alone on this machine (TensorFlow keeps every
core busy during training).
"""

import argparse
import os
import time

from _common import publish_results, markdown_table

from cifar_synth.judge_names import CNN, JUDGE_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="real CIFAR-10 (as `--data` of the CLI)")
    parser.add_argument("--judge", choices=JUDGE_NAMES, default=CNN, help="which judge to train")
    parser.add_argument("--budgets", nargs="*", default=None, help="named presets (default: quick default thorough)")
    parser.add_argument("--epochs", type=int, nargs="*", default=[], help="also train with these epoch counts …")
    parser.add_argument("--widths", type=int, nargs="+", default=None, help="… and these widths (default: default's)")
    parser.add_argument("--per-class", type=int, default=None, help="training images per class (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cifar_synth.classifier import make_predictor
    from cifar_synth.data import open_real_data
    from cifar_synth.images import subsample_per_class
    from cifar_synth.judges import JUDGES

    judge = JUDGES[args.judge]
    budgets = args.budgets if args.budgets is not None else ([] if args.epochs else list(judge.config_class.BUDGETS))
    configs = [judge.config_class.budget(name) for name in budgets]
    widths = tuple(args.widths) if args.widths else judge.config_class.budget("default").widths
    configs += [judge.config_class(widths=widths, epochs=epochs) for epochs in args.epochs]

    started = time.perf_counter()
    real = open_real_data(args.data)
    train, test = real.load("train"), real.load("test")
    if args.per_class:
        train = subsample_per_class(train, args.per_class, args.seed)
    load_seconds = time.perf_counter() - started
    print(f"loaded {len(train):,} training and {len(test):,} test images in {load_seconds:.0f} s")

    rows, load_before, cores = [], os.getloadavg()[0], os.cpu_count()
    for config in configs:
        wall, cpu = time.perf_counter(), time.process_time()
        model = judge.train(train, config, args.seed, title=f"{config.budget_name} {config.epochs} epochs")
        train_wall, train_cpu = time.perf_counter() - wall, (time.process_time() - cpu) / cores
        plain = (make_predictor(model, False)(test.images)[0].argmax(1) == test.labels).mean()
        flipped = (make_predictor(model, True)(test.images)[0].argmax(1) == test.labels).mean()
        total_wall, total_cpu = time.perf_counter() - wall, (time.process_time() - cpu) / cores
        row = [args.judge, config.budget_name, "-".join(map(str, config.widths)), config.epochs, f"{flipped:.2%}",
               f"{plain:.2%}", f"{train_wall / 60:.1f}", f"{train_cpu / 60:.1f}", f"{total_cpu / 60:.1f}",
               f"{os.getloadavg()[0]:.1f}"]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)

    table = markdown_table(
        ["judge", "budget", "widths", "epochs", "test accuracy (flip TTA)", "without TTA", "train min (wall)",
         "train min (CPU/cores)", "train+test min (CPU/cores)", "load avg after"], rows)
    body = (
        f"{judge.description} trained from scratch on the real training split of `{real.source}` "
        f"({len(train):,} images, {real.kind}), tested on its test split ({len(test):,} images); seed {args.seed}. "
        f"Data loading took {load_seconds:.0f} s (not in the table). 'CPU/cores' is process CPU time divided by the "
        f"{cores} cores: the run's length with the machine to itself. Load average before the first run: "
        f"{load_before:.1f} (other jobs share the cores, which stretches wall time).\n\n{table}"
    )
    publish_results(f"Evaluator judge {args.judge}: real-trained accuracy vs minutes", body, append=not args.no_append)


if __name__ == "__main__":
    main()
