"""Do two judges give the same verdicts? CAS of the same synthetic sets by two evaluations each, side by side.

    python benchmarks/judge_verdicts.py --pair NAME OLD_REPORT NEW_REPORT [--pair ...] [--out results.md]

Each `--pair` names a synthetic set and two report.json files of it (e.g. the `classic` judge's committed report
and the `default` judge's). Prints, and writes to `--out`: one row per set (both CAS, both baselines, both ratios and
the difference), Spearman's ρ across sets of the CAS and of the ratio, the mean difference (does the new judge rate
synthetic data systematically higher or lower?), and per set Spearman's ρ of the per-class CAS with the two judges'
lowest classes.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from _common import markdown_table


def ranks(values) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank (as Spearman's ρ needs)."""
    values = np.asarray(values, dtype=float)
    order = values.argsort(kind="stable")
    result = np.empty(len(values))
    result[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        result[tied] = result[tied].mean()
    return result


def spearman(a, b) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def figures(path: Path) -> dict:
    report = json.loads(Path(path).read_text())
    headline = report["headline"]
    return {"cas": headline["cas"], "baseline": headline["baseline_accuracy"], "ratio": headline["cas_ratio"],
            "per_class": report["classifiers"]["synthetic"]["per_class_accuracy"],
            "budget": report["config"].get("budget_name"), "sha": report["synthetic"].get("content_sha256", "")[:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", nargs=3, action="append", required=True, metavar=("NAME", "OLD", "NEW"))
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args()
    sets = [(name, figures(old), figures(new)) for name, old, new in args.pair]
    rows, class_rows = [], []
    for name, old, new in sets:
        rows.append([name, f"{old['cas']:.1%}", f"{new['cas']:.1%}", f"{new['cas'] - old['cas']:+.1%}",
                     f"{old['baseline']:.1%}", f"{new['baseline']:.1%}", f"{old['ratio']:.3f}", f"{new['ratio']:.3f}",
                     old["sha"], new["sha"]])
        classes = list(old["per_class"])
        before = [old["per_class"][c] for c in classes]
        after = [new["per_class"][c] for c in classes]
        lowest = lambda values: ", ".join(classes[i] for i in np.argsort(values)[:3])  # noqa: E731
        class_rows.append([name, f"{spearman(before, after):.2f}", lowest(before), lowest(after),
                           " · ".join(f"{v:.0%}" for v in before), " · ".join(f"{v:.0%}" for v in after)])
    old_cas, new_cas = [s[1]["cas"] for s in sets], [s[2]["cas"] for s in sets]
    old_ratio, new_ratio = [s[1]["ratio"] for s in sets], [s[2]["ratio"] for s in sets]
    budgets = f"{sets[0][1]['budget']} → {sets[0][2]['budget']}"
    summary = (f"Judges {budgets}, {len(sets)} sets: Spearman ρ of CAS {spearman(old_cas, new_cas):.3f}, of the ratio "
               f"to the judge's own baseline {spearman(old_ratio, new_ratio):.3f}; the new judge's CAS is "
               f"{np.mean(np.subtract(new_cas, old_cas)):+.1%} on average (from "
               f"{np.min(np.subtract(new_cas, old_cas)):+.1%} to {np.max(np.subtract(new_cas, old_cas)):+.1%}), its "
               f"ratio {np.mean(np.subtract(new_ratio, old_ratio)):+.3f}.")
    text = "\n\n".join([
        summary,
        markdown_table(["set", "CAS old", "CAS new", "difference", "baseline old", "baseline new", "ratio old",
                        "ratio new", "content sha256 old", "new"], rows),
        markdown_table(["set", "per-class Spearman ρ", "lowest 3 old", "lowest 3 new", "per class old",
                        "per class new"], class_rows)]) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
