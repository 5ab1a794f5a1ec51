"""Does the copy audit find planted copies? (issue 36; docs/audit.md has the table.)

Training images of each class's T are planted into a synthetic export, replacing 0, 1, 5 and 20% of each class's
images: exact, with Gaussian noise of σ = 2/255 and 8/255, mirrored, shifted by 1–2 pixels (edges repeated), and, as
a control, V images (the audit's own calibration half of the validation slice, never trained on). For each kind:
the share flagged and the share whose nearest training image (pixels or features) is the planted source; per share:
the per-class statistics averaged over the classes, which must move monotonically with it.

    python benchmarks/audit_bench.py --synthetic WORK/export --data DATA/cifar10-jpeg
"""

import argparse
import functools
import operator
import time
from pathlib import Path

import numpy as np

from _common import markdown_table, publish_results

COPIES = ("exact", "noise 2/255", "noise 8/255", "mirrored", "shifted 1-2 px")
CONTROL = "V control"
KINDS = (*COPIES, CONTROL)
SHARES = (0.0, 0.01, 0.05, 0.20)


def plant(image_of_kind: str, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The planted version of a uint8 image (32, 32, 3)."""
    if image_of_kind.startswith("noise"):
        sigma = float(image_of_kind.split()[1].split("/")[0])
        return np.clip(np.rint(source + rng.normal(0, sigma, source.shape)), 0, 255).astype(np.uint8)
    if image_of_kind == "mirrored":
        return source[:, ::-1]
    if image_of_kind.startswith("shifted"):
        dy, dx = rng.choice([-2, -1, 1, 2], 2)
        padded = np.pad(source, ((2, 2), (2, 2), (0, 0)), mode="edge")
        return padded[2 + dy:34 + dy, 2 + dx:34 + dx]
    return source  # exact, and V images


def planted_set(synthetic, detector, share: float, per_class: int, kinds: tuple[str, ...], rng: np.random.Generator):
    """`per_class` synthetic images of each class with `share` of them replaced by the `kinds` in turn; the planted
    images' (index, kind, training index of the source or -1)."""
    from cifar_synth.images import LabeledImages

    images, labels, planted = [], [], []
    for label, entry in detector.per_class.items():
        own = synthetic.images[synthetic.labels == label][:per_class].copy()
        count = int(round(share * len(own)))
        slots = rng.choice(len(own), count, replace=False)
        planted_kinds = [kinds[i % len(kinds)] for i in range(count)]
        train_sources = iter(rng.choice(len(entry.train), count, replace=False))
        validation_sources = iter(rng.choice(len(entry.validation), count, replace=True))
        for slot, kind in zip(slots, planted_kinds):
            if kind == CONTROL:
                own[slot], source = entry.validation[next(validation_sources)], -1
            else:
                source = next(train_sources)
                own[slot] = plant(kind, entry.train[source], rng)
                source = int(entry.train_index[source])
            planted.append((sum(map(len, images)) + slot, kind, source))
        images.append(own)
        labels.append(np.full(len(own), label))
    return LabeledImages(np.concatenate(images), np.concatenate(labels), synthetic.classes), planted


def audit_planted(synthetic, detector, share: float, args, kinds: tuple[str, ...], rng: np.random.Generator,
                  by_kind: dict) -> tuple[dict, list]:
    """Audit a set with `share` planted of the `kinds`; add to `by_kind` how many were planted, flagged and matched
    with their source."""
    from cifar_synth.audit import run_audit

    images, planted = planted_set(synthetic, detector, share, args.per_class, kinds, rng)
    result = run_audit(images, detector, args.seed)
    rows = {row["synthetic_index"]: row for row in result["rows"]}
    for index, kind, source in planted:
        row = rows[index]
        by_kind[kind]["planted"] += 1
        by_kind[kind]["flagged"] += row["flagged"]
        by_kind[kind]["source"] += source in (row["pixel_train_index"], row["feature_train_index"])
    return result, planted


def class_mean(classes: list[dict], *keys: str) -> float:
    """The mean over the classes of the figure at `keys` (nested) of each class's audit figures."""
    return float(np.mean([functools.reduce(operator.getitem, keys, figures) for figures in classes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", required=True, help="an export of every class")
    parser.add_argument("--data", required=True, help="the real data its generators trained on")
    parser.add_argument("--per-class", type=int, default=1000, help="synthetic images per class in each set")
    parser.add_argument("--cache-dir", help="where the audit CNN is cached (default: the evaluator's cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks-history.md")
    args = parser.parse_args()

    from cifar_synth.audit import CopyDetector, validation_fraction
    from cifar_synth.data import open_real_data
    from cifar_synth.synthetic import load_synthetic

    started = time.perf_counter()
    synthetic = load_synthetic(args.synthetic)
    real = open_real_data(args.data)
    fraction, source = validation_fraction(Path(args.synthetic), real.sha256, None)
    detector = CopyDetector.calibrated(real.load("train"), real.sha256, fraction, source, cache_dir=args.cache_dir)
    rng = np.random.default_rng(args.seed)
    by_kind = {kind: {"planted": 0, "flagged": 0, "source": 0} for kind in KINDS}
    kind_rows, level_rows = [], []
    for share in SHARES:
        # The V control apart, in a set of its own: each V image is its own nearest V image, which would move the
        # nearest-in-T figures against the copies'.
        control, _ = audit_planted(synthetic, detector, share, args, (CONTROL,), rng, by_kind)
        level_started = time.perf_counter()
        result, planted = audit_planted(synthetic, detector, share, args, COPIES, rng, by_kind)
        rows = {row["synthetic_index"]: row for row in result["rows"]}
        planted_at = {index for index, _, _ in planted}
        organic = [row["flagged"] for index, row in rows.items() if index not in planted_at]
        classes = [figures for figures in result["classes"].values() if figures]
        level_rows.append([f"{share:.0%}", f"{len(planted):,}", f"{class_mean(classes, 'flagged_share'):.2%}",
                           f"{np.mean(organic):.2%}", f"{class_mean(classes, 'pixel', 'nearest_in_train_excess'):.3f}",
                           f"{class_mean(classes, 'feature', 'nearest_in_train_excess'):.3f}",
                           f"{result['overall']['c_t_pixel']:.1f}", f"{result['overall']['c_t_feature']:.1f}",
                           f"{class_mean(classes, 'feature', 'authenticity'):.3f}",
                           f"{control['overall']['flagged_share']:.2%}",
                           f"{time.perf_counter() - level_started:.0f} s"])
    for kind, count in by_kind.items():
        planted_count = count["planted"]
        kind_rows.append([kind, f"{planted_count:,}", f"{count['flagged'] / planted_count:.1%}",
                          "–" if kind == CONTROL else f"{count['source'] / planted_count:.1%}"])
    thresholds = detector.thresholds
    body = "\n\n".join([
        f"Export `{args.synthetic}`, {args.per_class:,} images per class per set; thresholds: pixels ℓ2 "
        f"{thresholds['pixel_l2']:.3f}, features cosine {thresholds['feature_cosine']:.4f} (V's "
        f"{thresholds['false_flag_rate']:.1%} quantile). The V control images are the V images the thresholds "
        f"were calibrated on, of which {result['overall']['validation_flagged_share']:.2%} are flagged.",
        "Planted images over all shares (1, 5 and 20%), by kind:",
        markdown_table(["kind", "planted", "flagged", "nearest is the source"], kind_rows),
        "Per planted share, each class's figure averaged over the classes (C_T overall):",
        markdown_table(["planted", "images planted", "flagged", "flagged among the others", "T excess (pixels)",
                        "T excess (features)", "C_T pixels", "C_T features", "authenticity",
                        "V-control set: flagged", "audit time"],
                       level_rows),
        f"Total {time.perf_counter() - started:.0f} s.",
    ])
    publish_results("Copy audit: planted copies", body, append=not args.no_append)


if __name__ == "__main__":
    main()
