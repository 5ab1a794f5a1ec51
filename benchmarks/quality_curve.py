"""The quality curve: CAS against training steps per class, from finished quality protocols.

    python benchmarks/quality_curve.py --work WORK/protocol-shared WORK/protocol-15 \
        [--plot docs/images/quality-curve.png] [--no-append]

Each --work directory is one point, e.g. a protocol and another that extends it by more steps (quality_protocol.py
--extend WORK --steps-per-class N). Its budget per class is in the steps its runs trained, the shared start's share
included: 8,000 shared + 10 × 4,000 steps is 4,800 steps per class. Protocols that budgeted in minutes are placed
by the steps they trained too, their minutes shown beside. The plot shows the CAS of the bundled CNN and of the second judge, unfiltered and
classifier-filtered where the protocol evaluated them, with the real-trained baselines as dashed lines; the same
figures are appended as a table to docs/benchmarks-history.md. Where a protocol's unfiltered report has evaluator-seed
retrainings (benchmarks/cas_spread.py), that point's CNN figure gets their range as an error bar; a --work that
replicates another with other training seeds (quality_protocol.py --replicate) adds its CAS to that point's range
over training seeds, a second error bar.
"""

import argparse
import json
import statistics
from pathlib import Path

from _common import REPO_ROOT, markdown_table, publish_results
from quality_protocol import budget_text, load_variants, stage_key

from cifar_synth.classes import CIFAR10
from cifar_synth.report import Report, percent


def steps_per_class(state: dict) -> float:
    """Trained steps per class (the median over the classes), the shared start's share included."""
    shared = (state.get("shared") or {}).get("steps", 0)
    return statistics.median(entry["steps"] for entry in state["classes"].values()) + shared / len(CIFAR10.names)


def seed_accuracies(state: dict, report: Report) -> list[float]:
    """The CNN's CAS with the report's seed and with every seed cas_spread.py retrained it with."""
    spread_dir = Path(state[stage_key("evaluate", False)]["report"]).parent / "spread"
    return [report.classifiers["synthetic"].accuracy] + [
        json.loads(path.read_text())["accuracy"] for path in sorted(spread_dir.glob("cnn-seed-*.json"))]


def curve_point(work: Path) -> dict:
    """One protocol's figures: budget, steps, and CAS of both judges, unfiltered and filtered (None if missing)."""
    variants = load_variants(work)
    state, report = variants[0][1], variants[0][2]
    by_filter = {name.endswith("classifier-filtered"): variant_report for name, _, variant_report in variants}
    point = {"work": str(work), "budget": steps_per_class(state), "budget_text": budget_text(state),
             "replicates": state.get("replicates"), "training_seeds": [report.headline.cas],
             "steps": statistics.median(entry["steps"] for entry in state["classes"].values()),
             "baseline": report.headline.baseline_accuracy, "seeds": seed_accuracies(state, report),
             "lowest": min(report.classifiers["synthetic"].per_class_accuracy.items(), key=lambda item: item[1])}
    judge = report.judges.get("resnet")
    point["judge_baseline"] = judge.baseline_accuracy if judge else None
    for filtered in (False, True):
        evaluated = by_filter.get(filtered)
        suffix = "_filtered" if filtered else ""
        point["cas" + suffix] = evaluated.headline.cas if evaluated else None
        judged = evaluated.judges.get("resnet") if evaluated else None
        point["judge" + suffix] = judged.cas if judged else None
    return point


def judge_baseline(points: list[dict]) -> float | None:
    """The second judge's real-trained accuracy, from the points evaluated with it (the same for all)."""
    return next((p["judge_baseline"] for p in points if p["judge_baseline"] is not None), None)


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = [p["budget"] for p in points]
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    series = [("cas", "CNN", "C0", "-"), ("cas_filtered", "CNN, filtered", "C0", ":"),
              ("judge", "ResNet judge", "C1", "-"), ("judge_filtered", "ResNet judge, filtered", "C1", ":")]
    for key, label, colour, style in series:
        shown = [(b, p[key]) for b, p in zip(budgets, points) if p[key] is not None]
        if shown:
            axes.plot(*zip(*shown), style, marker="o", color=colour, label=label)
    # The training-seed bar sits beside the evaluator-seed one, so that both stay readable.
    beside = max(budgets) / 50
    bars = (("seeds", "C0", 0.0, None), ("training_seeds", "C2", beside, "CAS over training seeds"))
    for key, colour, offset, label in bars:
        for p in points:
            if len(p[key]) > 1:
                low, high = min(p[key]), max(p[key])
                axes.errorbar([p["budget"] + offset], [p["cas"]], yerr=[[p["cas"] - low], [high - p["cas"]]],
                              color=colour, capsize=4, label=label)
    axes.axhline(points[0]["baseline"], color="C0", linestyle="--", linewidth=0.8, label="CNN real-trained")
    resnet_baseline = judge_baseline(points)
    if resnet_baseline is not None:
        axes.axhline(resnet_baseline, color="C1", linestyle="--", linewidth=0.8, label="ResNet real-trained")
    axes.set_xlabel("training steps per class (shared start's share included)")
    axes.set_ylabel("accuracy on real test images")
    axes.set_ylim(0, 1)
    axes.set_xticks(budgets)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, nargs="+", required=True, help="finished quality protocols, one per point")
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "docs" / "images" / "quality-curve.png")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history")
    args = parser.parse_args()

    points = [curve_point(work) for work in args.work]
    replicates = [p for p in points if p["replicates"]]
    points = sorted((p for p in points if not p["replicates"]), key=lambda p: p["budget"])
    for replicate in replicates:  # a replicate is its source's point with another training seed
        source = [p for p in points if Path(p["work"]).resolve() == Path(replicate["replicates"]).resolve()]
        if not source:
            raise SystemExit(f"error: {replicate['work']} replicates {replicate['replicates']}, which is not a --work")
        source[0]["training_seeds"].append(replicate["cas"])
    plot(points, args.plot)

    def seeds(accuracies: list[float]) -> str:
        return (f"{', '.join(percent(a) for a in accuracies)} ({100 * (max(accuracies) - min(accuracies)):.1f} "
                "points)" if len(accuracies) > 1 else "–")

    rows = [[f"{p['budget']:,.0f}", p["budget_text"], f"{p['steps']:,.0f}", percent(p["cas"]), percent(p["cas_filtered"]),
             percent(p["judge"]), percent(p["judge_filtered"]), f"{p['lowest'][0]} {percent(p['lowest'][1])}",
             seeds(p["seeds"]), seeds(p["training_seeds"]), f"`{p['work']}`"] for p in points]
    table = markdown_table(["steps per class (shared share included)", "budget per class", "steps per class (median)", "CAS", "CAS, filtered", "judge CAS",
                            "judge CAS, filtered", "lowest class (CNN)", "CAS over evaluator seeds",
                            "CAS over training seeds", "protocol"], rows)
    body = (f"{table}\n\nBaselines (real-trained, same test images): CNN {percent(points[0]['baseline'])}, ResNet "
            f"judge {percent(judge_baseline(points))}. Plot: `{args.plot}`.")
    publish_results("Quality curve", body, append=not args.no_append)


if __name__ == "__main__":
    main()
