"""A cheap per-class screen of a recipe before a full quality protocol: train a few (hard) classes for a short
budget each, then score 1,000 samples per class in the features of a real-trained CNN (the judge).

    python benchmarks/proxy.py --name base --classes cat dog deer --minutes 3 --data DATA \
        --judge ~/.cache/cifar-synth/evaluator/<entry>/classifier.keras
    python benchmarks/proxy.py --name guided ... -- --guidance 0.3 --guide PATH   # options after -- go to train

Per class: training steps, recognizability (the judge's accuracy on the samples), Fréchet distance to 2,000 real
training images of the class in the judge's features, and the diversity ratio (mean pairwise feature distance,
synthetic / real). Each class trains in its own process on one pinned CPU with one thread per pool (`--jobs`
classes at a time), as in the protocol. When the recipe itself uses a classifier (guidance), judge with another
one: a judge that made the data flatters it. Results: WORK/<name>/proxy.json, and a row per class appended to
benchmarks/results/proxy/results.md.
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import REPO_ROOT, markdown_table, thread_env

SAMPLES = 1000
REFERENCE = 2000
RESULTS = REPO_ROOT / "benchmarks" / "results" / "proxy" / "results.md"


def train(class_name: str, cpu: str, args, runs: Path) -> None:
    command = ["taskset", "-c", cpu, sys.executable, "-m", "cifar_synth", "train", "--class", class_name,
               "--data", args.data, "--runs", str(runs), *budget_options(args), "--init-from", "none",
               "--seed", str(args.seed), "--quiet", "--fresh", *args.train_options]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, env=thread_env(1), check=True)


def budget_options(args) -> list[str]:
    return ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]


def budget_label(args) -> str:
    return f"{args.steps:,} steps" if args.steps else f"{args.minutes:g} min"


def score(class_name: str, runs: Path, args) -> dict:
    import keras

    from cifar_synth.classes import CIFAR10
    from cifar_synth.classifier import load_classifier, make_predictor
    from cifar_synth.data import open_real_data
    from cifar_synth.metrics import frechet_distance, sampled_pairwise_distance
    from cifar_synth.images import to_uint8
    from cifar_synth.runs import RunPaths, run_summary

    label = CIFAR10.label(class_name)
    run_dir = runs / class_name
    generator = keras.models.load_model(RunPaths(run_dir).generator, compile=False)
    latents = np.random.default_rng(args.seed + 1).standard_normal((SAMPLES, generator.input_shape[1]))
    samples = to_uint8(generator.predict(latents.astype(np.float32), batch_size=500, verbose=0))
    real = open_real_data(args.data).load("train", classes=[label]).images
    real = real[np.random.default_rng(args.seed).permutation(len(real))[:REFERENCE]]
    predict = make_predictor(load_classifier(Path(args.judge).expanduser(), len(CIFAR10)))
    probabilities, fake_features = predict(samples)
    _, real_features = predict(real)
    rng = np.random.default_rng(args.seed)
    return {
        "steps": run_summary(run_dir).steps,
        "recognizability": float(np.mean(probabilities.argmax(1) == label)),
        "frechet_distance": frechet_distance(fake_features, real_features),
        "diversity_ratio": (sampled_pairwise_distance(fake_features, rng)
                            / sampled_pairwise_distance(real_features, rng)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="name of the variant (its work folder and its table rows)")
    parser.add_argument("--classes", nargs="+", default=["cat", "dog", "deer"])
    parser.add_argument("--minutes", type=float, default=3.0, help="training-loop wall time per class")
    parser.add_argument("--steps", type=int, help="a budget in training steps per class instead of --minutes "
                        "(recipes that differ in step cost compared at equal steps)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--judge", required=True, help="real-trained classifier (.keras) that scores the samples")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cifar-synth-proxy"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", default="0,1", help="CPUs to pin the training processes to, one class each")
    parser.add_argument("--score-only", action="store_true", help="score the runs of an earlier call again")
    parser.add_argument("train_options", nargs="*", help="options passed to `cifar-synth train` (after --)")
    args = parser.parse_args()
    runs = args.work / args.name / "runs"
    cpus = args.cpus.split(",")
    started = time.perf_counter()
    if not args.score_only:
        free = list(cpus)

        def train_on_free_cpu(class_name):
            cpu = free.pop()
            try:
                train(class_name, cpu, args, runs)
            finally:
                free.append(cpu)

        with ThreadPoolExecutor(len(cpus)) as pool:
            list(pool.map(train_on_free_cpu, args.classes))
    results = {name: score(name, runs, args) for name in args.classes}
    record = {"name": args.name, "budget": budget_label(args), "seed": args.seed, "train_options": args.train_options,
              "judge": args.judge, "wall_seconds": round(time.perf_counter() - started), "classes": results}
    (args.work / args.name / "proxy.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [[args.name, " ".join(args.train_options) or "(defaults)", budget_label(args), args.seed, name,
             f"{r['steps']:,}", f"{r['recognizability']:.1%}", f"{r['frechet_distance']:.2f}",
             f"{r['diversity_ratio']:.2f}"] for name, r in results.items()]
    table = markdown_table(["variant", "train options", "budget", "seed", "class", "steps", "recognizability", "FD",
                            "diversity"], rows)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a") as file:
        file.write("\n".join(table.splitlines()[0 if new else 2:]) + "\n")


if __name__ == "__main__":
    main()
