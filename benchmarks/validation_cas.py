"""CAS on the validation slice: compare recipes, spreads and filters without reading the test split.

    python benchmarks/validation_cas.py --data DATA --exports WORK/export-a WORK/export-b
    python benchmarks/validation_cas.py --data DATA --runs WORK/runs --latent-stds 1 1.5 2

Each synthetic set (an export, or a runs folder's final generators sampled as an unfiltered `export --seed 0` samples
them, with every latent scaled by each standard deviation) trains the bundled CNN of `--budget` (default `fast`) with
seed 0, exactly as `cifar-synth evaluate` trains its synthetic-trained classifier; it is tested on the validation slice
the runs held out (10% of the training split, the same images for every run), never on the test split. Rows are
appended to `--results` (JSON lines, one per set, written as each finishes) and the table to the history.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import markdown_table, publish_results

VALIDATION_FRACTION = 0.1  # `cifar-synth train`'s default: the slice every run of the protocol held out


def sampled(runs: Path, std: float, count: int):
    """The runs' final generators' first `count` images per class for export seed 0, latents scaled by `std`."""
    from cifar_synth.images import LabeledImages
    from cifar_synth.runs import runs_classes, trained_classes
    from cifar_synth.sampling import class_sampler, generate, latent_batches, load_generator

    classes = runs_classes(runs)
    images, labels = [], []
    for name in trained_classes(runs):
        sampler = class_sampler(runs / name, use_selection=False)
        generator, latent_dim = load_generator(sampler.path)
        label = classes.label(name)
        for latents in latent_batches(0, label, count, latent_dim, 2048, std):
            images.append(generate(generator, latents, sampler.path))
            labels.append(np.full(len(latents), label))
    return LabeledImages(np.concatenate(images), np.concatenate(labels).astype(np.int64), classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the real data the runs trained on")
    parser.add_argument("--exports", type=Path, nargs="*", default=[])
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--latent-stds", type=float, nargs="*", default=[])
    parser.add_argument("--count", type=int, default=5000, help="images per class sampled from --runs")
    parser.add_argument("--budget", default="fast")
    parser.add_argument("--results", type=Path, default=Path("validation-cas.jsonl"))
    args = parser.parse_args()

    from cifar_synth.classifier import EvaluatorConfig, make_predictor
    from cifar_synth.data import open_real_data, split_validation
    from cifar_synth.judges import JUDGES
    from cifar_synth.synthetic import load_synthetic

    config = EvaluatorConfig.budget(args.budget)
    _, validation = split_validation(open_real_data(args.data).load("train"), VALIDATION_FRACTION)
    sets = [(str(path), lambda path=path: load_synthetic(path)) for path in args.exports]
    sets += [(f"{args.runs} at latent std {std:g}", lambda std=std: sampled(args.runs, std, args.count))
             for std in args.latent_stds]
    rows = []
    for name, load in sets:
        start = time.perf_counter()
        model = JUDGES["cnn"].train(load(), config, 0, title=name)
        predicted = make_predictor(model, config.test_time_flip)(validation.images)[0].argmax(1)
        per_class = [float(np.mean(predicted[validation.labels == label] == label))
                     for label in range(len(validation.classes))]
        row = {"set": name, "budget": args.budget, "split": "validation", "images": len(validation),
               "accuracy": float(np.mean(predicted == validation.labels)), "per_class": per_class,
               "seconds": round(time.perf_counter() - start)}
        with args.results.open("a") as results:
            results.write(json.dumps(row) + "\n")
        print(f"{name}: {row['accuracy']:.1%}", flush=True)
        rows.append([name, f"{row['accuracy']:.1%}", " · ".join(f"{100 * value:.0f}" for value in per_class)])
    publish_results(f"CAS on the validation slice ({args.budget} judge)",
                    markdown_table(["synthetic set", "CAS (validation)", "per class"], rows))


if __name__ == "__main__":
    main()
