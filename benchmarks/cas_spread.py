"""How much a CAS figure moves with the evaluator's own randomness: one export, its synthetic-trained CNN retrained
with other seeds.

    python benchmarks/cas_spread.py --report WORK/protocol-shared/report --seeds 1 [--judge cnn] [--no-append]

Reads the synthetic data, the real data and the judge's configuration from an existing `cifar-synth evaluate`
report, trains that judge on the same synthetic images with each other seed (initialisation, augmentation and batch
order; the subsample too when the export has more images per class than the real train split), exactly as the
evaluator trains its synthetic-trained classifier, and tests it on the real test split. The real-trained baseline is
not retrained: the spread is the synthetic-trained accuracy's (CAS's). Each seed's result is written to
`<report>/spread/<judge>-seed-<n>.json` as it finishes, so an interrupted run keeps what it measured; a rerun skips
those seeds. The table gives CAS per seed and per class, and the spread (max − min) beside the report's own figure.
"""

import argparse
import json
from pathlib import Path

from _common import markdown_table, publish_results

from cifar_synth.classes import CIFAR10
from cifar_synth.files import write_json_atomic
from cifar_synth.report import ClassifierResult, Report, percent


def judge_result(report: Report, judge: str) -> ClassifierResult:
    """The report's synthetic-trained classifier of `judge` (the bundled CNN or a second judge)."""
    return (report.classifiers if judge == "cnn" else report.judges[judge].classifiers)["synthetic"]


def retrain(report: Report, judge_name: str, seed: int) -> dict:
    """Train `judge_name` on the report's synthetic data with `seed`, as the evaluator does; its accuracies on the
    real test split."""
    from cifar_synth.data import open_real_data
    from cifar_synth.fits import Fit, train_and_test
    from cifar_synth.images import subsample_per_class
    from cifar_synth.judges import JUDGES
    from cifar_synth.reporter import Reporter
    from cifar_synth.synthetic import load_synthetic

    config = JUDGES[judge_name].config_class(
        **(report.config if judge_name == "cnn" else report.judges[judge_name].config))
    synthetic = subsample_per_class(load_synthetic(report.synthetic["path"]), report.train_images_per_class, seed)
    test = open_real_data(report.real_data["source"]).load("test")
    _, result = train_and_test(Fit(judge_name, config, "synthetic"), synthetic, test, seed, Reporter())
    return {"seed": seed, "accuracy": result.accuracy, "per_class_accuracy": result.per_class_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="a report directory (or its report.json)")
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="seeds other than the report's")
    parser.add_argument("--judge", default="cnn", help="cnn (the bundled CNN) or a second judge in the report")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history")
    args = parser.parse_args()

    report = Report.load(args.report)
    report_dir = args.report if args.report.is_dir() else args.report.parent
    own = judge_result(report, args.judge)
    results = [{"seed": report.seed, "accuracy": own.accuracy, "per_class_accuracy": own.per_class_accuracy}]
    for seed in args.seeds:
        path = report_dir / "spread" / f"{args.judge}-seed-{seed}.json"
        if not path.exists():
            write_json_atomic(path, retrain(report, args.judge, seed))
        results.append(json.loads(path.read_text()))
        print(f"seed {seed}: CAS {percent(results[-1]['accuracy'])}", flush=True)

    def spread(values: list[float]) -> str:
        return f"{100 * (max(values) - min(values)):.1f} points"

    rows = [[f"CAS ({args.judge})", *(percent(r["accuracy"]) for r in results),
             spread([r["accuracy"] for r in results])]]
    rows += [[name, *(percent(r["per_class_accuracy"][name]) for r in results),
              spread([r["per_class_accuracy"][name] for r in results])] for name in CIFAR10.names]
    table = markdown_table(["synthetic-trained accuracy on real test", *(f"seed {r['seed']}" for r in results),
                            "max − min"], rows)
    body = (f"Export `{report.synthetic['path']}`, report `{report_dir}` (seed {report.seed}); the {args.judge} "
            f"judge retrained on the same synthetic images with each seed, the real-trained baseline unchanged.\n\n"
            + table)
    publish_results(f"CAS spread over evaluator seeds ({args.judge})", body, append=not args.no_append)


if __name__ == "__main__":
    main()
