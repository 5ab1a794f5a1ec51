"""`cifar-synth audit`: does the synthetic data copy the real images its generators trained on?

Each class's generator trained on T, the class's training images less its validation slice V (`data.split_validation`,
never trained on). V is the reference for what "close by chance" means: a fresh image from the class's distribution
is as close to T as V is. V is halved: the audit CNN, whose penultimate features are the second space, trains on one
half (`V_fit`, all classes) and never on T, and the other half (`V_ref`, "V" below) calibrates every threshold and
is the real side of precision/recall/density/coverage, so that neither T nor V is familiar to the CNN.

Per synthetic image, in two spaces: its nearest training image of its class and distance, and the ratio to the
second-nearest; pixels by ℓ2 over the 3,072 values in [0, 1], against T and T's mirror images (training flips), the
CNN's features by cosine distance. It is flagged when it is an exact copy (max |Δ| ≤ 1/255 against its nearest
image) or closer than V's `false_flag_rate` quantile in either space, so that an image drawn like V is flagged with
probability about `false_flag_rate` per space, at most twice that in all. Per class: the flagged share with its
Wilson interval beside V's own, the share whose nearest image of T ∪ V is in T (DCR-style) against its chance value,
Meehan et al.'s Z_U (C_T overall: below 0 the synthetic images are closer to T than V is), authenticity (Alaa et al.
2022), and PRDC. docs/audit.md has the figures, and which of them tell what here.
"""

import csv
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_synth.classes import Classes
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, write_json_atomic
from cifar_synth.images import LabeledImages
from cifar_synth.metrics import prdc
from cifar_synth.reporter import Reporter

AUDIT_JSON, PAIRS_CSV, PAIRS_PNG = "audit.json", "closest_pairs.csv", "closest_pairs.png"
AUDIT_VERSION = 1
FALSE_FLAG_RATE = 0.001  # the quantile of V's nearest-training distances each space's threshold sits at
EXACT_LEVELS = 1  # an exact copy differs from its training image by at most this many uint8 levels anywhere
PAIRS_PER_CLASS = 4  # closest pairs per class in the picture
# The audit CNN: the bundled CNN's classic architecture, narrow, trained long enough on its 2,500 images to separate
# the classes (69% on V for CIFAR-10).
_CNN = {"widths": (16, 32, 64, 128), "epochs": 30, "batch_size": 128, "budget_name": "audit"}
_QUERY_BLOCK = 2048  # query rows per distance block: memory O(block × training images)
NOT_A_GUARANTEE = (
    "Passing this audit is not a guarantee against membership inference: it finds synthetic images that are near "
    "copies of training images, in pixels and in one CNN's features; an attacker may still tell from the data or "
    "the generator whether an image was trained on.")


@dataclass(frozen=True)
class AuditOptions:
    """What `audit_synthetic` needs. `data_path`/`dataset`: the real data the generators trained on
    (`data.open_real_data`). `validation_fraction`: the validation slice; default: the export's manifest's, else
    `config.DEFAULT_VALIDATION_FRACTION`. The audit CNN is cached in `cache_dir` (default: the evaluator's cache's
    `audit/` folder)."""

    data_path: str | Path | None = None
    dataset: str | None = None
    out_dir: str | Path | None = None
    validation_fraction: float | None = None
    false_flag_rate: float = FALSE_FLAG_RATE
    seed: int = 0
    cache_dir: str | Path | None = None

    def validate(self) -> None:
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise UserError(f"--validation-fraction must be between 0 and 1, got {self.validation_fraction}")
        if not 0 < self.false_flag_rate < 0.5:
            raise UserError(f"--false-flag-rate must be between 0 and 0.5, got {self.false_flag_rate}")


def default_out_dir(synthetic_path: str | Path) -> Path:
    path = Path(synthetic_path).resolve()
    return Path("reports") / (path.stem if path.is_file() else path.name) / "audit"


def audit_synthetic(synthetic_path: str | Path, options: AuditOptions = AuditOptions(),
                    reporter: Reporter | None = None) -> dict:
    """Audit the synthetic dataset at `synthetic_path`; write audit.json, the closest pairs' CSV and picture to
    `options.out_dir` (default `reports/<name>/audit`) and return audit.json's content."""
    from cifar_synth.data import open_real_data
    from cifar_synth.synthetic import load_synthetic

    started = time.perf_counter()
    options.validate()
    reporter = reporter or Reporter()
    synthetic = load_synthetic(synthetic_path)
    real = open_real_data(options.data_path, dataset=options.dataset)
    if not real.classes.same_as(synthetic.classes):
        raise UserError(f"{synthetic_path} is of the classes of {synthetic.classes.dataset}, the real data "
                        f"({real.source}) of {real.classes.dataset}; audit it against the data its generators trained "
                        "on (--data, --dataset)")
    fraction, source = validation_fraction(Path(synthetic_path), real.sha256, options.validation_fraction)
    real_train = real.load("train")
    load_seconds = time.perf_counter() - started
    detector = CopyDetector.calibrated(real_train, real.sha256, fraction, source, options.false_flag_rate,
                                       options.cache_dir, reporter)
    audit = run_audit(synthetic, detector, options.seed)
    audit["synthetic"] = {"path": str(Path(synthetic_path).resolve()), "images": len(synthetic)}
    audit["real_data"] = {"source": real.source, "sha256": real.sha256}
    audit["timings"] = {"load_seconds": load_seconds, **audit["timings"],
                        "total_seconds": time.perf_counter() - started}
    save_audit(audit, options.out_dir or default_out_dir(synthetic_path))
    return audit


def validation_fraction(synthetic_path: Path, real_sha256: str, given: float | None) -> tuple[float, str]:
    """The validation fraction the synthetic data's generators held out, and where it comes from: `given`, else the
    export's manifest (every class's run must agree, and must have trained on the real data given), else the
    default."""
    from cifar_synth.config import DEFAULT_VALIDATION_FRACTION
    from cifar_synth.synthetic import MANIFEST

    if given is not None:
        return given, "--validation-fraction"
    try:
        entries = json.loads((synthetic_path / MANIFEST).read_text())["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_VALIDATION_FRACTION, "the default (no export manifest records it)"
    data = [(entry.get("run_config") or {}).get("data") or {} for entry in entries]
    if any(item.get("sha256") not in (None, real_sha256) for item in data):
        raise UserError(f"the generators of {synthetic_path} trained on other real data than --data; audit against "
                        "the data they trained on")
    fractions = {(item.get("validation") or {}).get("fraction") for item in data}
    if len(fractions) != 1 or not all(fractions):
        raise UserError(f"{synthetic_path}: the classes' runs record no validation slice, or different ones "
                        f"({sorted(map(str, fractions))}); give --validation-fraction")
    return fractions.pop(), "the export's manifest"


# --- nearest training images ---------------------------------------------------------------------------------------

@dataclass
class _Nearest:
    """Per query: the nearest and second-nearest reference (index, distance); `mirrored`: the nearest matched as
    its mirror image (pixels only)."""

    index: np.ndarray
    distance: np.ndarray
    second: np.ndarray
    mirrored: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        return self.distance / np.maximum(self.second, 1e-12)


def _mirror_parts(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(symmetric, antisymmetric) halves of the images in [0, 1], an orthonormal change of basis: x·y is sym·sym +
    anti·anti and x·mirror(y) is sym·sym − anti·anti, so one product of the same size gives both orientations."""
    x = images.astype(np.float32) / 255
    left, right = x[:, :, :16], x[:, :, :15:-1]
    scale = np.float32(np.sqrt(0.5))
    return ((left + right) * scale).reshape(len(x), -1), ((left - right) * scale).reshape(len(x), -1)


class _PixelSpace:
    """ℓ2 over the pixels in [0, 1], each reference image taken as it is or mirrored, whichever is nearer."""

    def __init__(self, images: np.ndarray):
        self.sym, self.anti = _mirror_parts(images)
        self.norms = np.sum(self.sym**2, 1) + np.sum(self.anti**2, 1)

    def nearest(self, images: np.ndarray) -> _Nearest:
        sym, anti = _mirror_parts(images)
        norms = np.sum(sym**2, 1) + np.sum(anti**2, 1)
        blocks = []
        for start in range(0, len(images), _QUERY_BLOCK):
            rows = slice(start, start + _QUERY_BLOCK)
            same, opposite = sym[rows] @ self.sym.T, anti[rows] @ self.anti.T
            # In place, over the largest arrays here: ‖y‖² − 2 (sym·sym + |anti·anti|), the squared distance
            # less the query's own ‖x‖², which the ranking does not need.
            same += np.abs(opposite)
            same *= -2
            same += self.norms
            block = _two_nearest(same, opposite)
            for distances in (block.distance, block.second):
                distances += norms[rows]
                np.sqrt(np.maximum(distances, 0, out=distances), out=distances)
            blocks.append(block)
        return _joined(blocks)


class _FeatureSpace:
    """Cosine distance between feature vectors."""

    def __init__(self, features: np.ndarray):
        self.unit = _unit(features)

    def nearest(self, features: np.ndarray) -> _Nearest:
        unit = _unit(features)
        return _joined([_two_nearest(1 - unit[start:start + _QUERY_BLOCK] @ self.unit.T, None)
                        for start in range(0, len(unit), _QUERY_BLOCK)])


def _unit(features: np.ndarray) -> np.ndarray:
    features = features.astype(np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _two_nearest(distances: np.ndarray, opposite: np.ndarray | None) -> _Nearest:
    """The two smallest of each row of `distances` (overwritten); `opposite`: the antisymmetric products, whose sign
    at the nearest says whether it matched mirrored."""
    rows = np.arange(len(distances))
    first = distances.argmin(1)
    nearest = distances[rows, first].copy()
    distances[rows, first] = np.inf  # two argmin passes cost less than a partition of every row
    second = distances.min(1) if distances.shape[1] > 1 else np.full(len(rows), np.inf, np.float32)
    return _Nearest(first, nearest, second,
                    opposite[rows, first] < 0 if opposite is not None else np.zeros(len(rows), bool))


def _joined(blocks: list[_Nearest]) -> _Nearest:
    return _Nearest(*(np.concatenate([getattr(block, name) for block in blocks])
                      for name in ("index", "distance", "second", "mirrored")))


# --- the detector ----------------------------------------------------------------------------------------------------

@dataclass
class _Class:
    """One class's training images T (their indices in the training split), T's two spaces and V."""

    train: np.ndarray  # uint8 images of T
    train_index: np.ndarray  # their indices in the real training split as `RealData.load("train")` orders it
    pixels: _PixelSpace
    features: _FeatureSpace
    validation: np.ndarray  # uint8 images of V (V_ref)
    validation_features: np.ndarray


@dataclass
class CopyDetector:
    """T and V of every class, the audit CNN and the two thresholds calibrated on V: `flags` tells which images are
    copies; `run_audit` measures a whole synthetic set with it."""

    classes: Classes
    per_class: dict[int, _Class]
    predict: Callable  # uint8 images → (probabilities, features)
    thresholds: dict
    provenance: dict  # splits and the audit CNN, for audit.json

    @classmethod
    def calibrated(cls, real_train: LabeledImages, real_sha256: str, fraction: float, fraction_source: str,
                   false_flag_rate: float = FALSE_FLAG_RATE, cache_dir: str | Path | None = None,
                   reporter: Reporter | None = None) -> "CopyDetector":
        """Split the real training split into T and V (`fraction` of each class, as training did), train or load
        the audit CNN on V_fit, and calibrate the thresholds on V_ref → T."""
        from cifar_synth.classifier import make_predictor

        reporter = reporter or Reporter()
        held = _held_out(real_train.labels, fraction)
        fit_half = _fit_half(real_train.labels, held)
        reference = held & ~fit_half
        short = [real_train.classes.names[label] for label in np.unique(real_train.labels)
                 if (held & (real_train.labels == label)).sum() < 2]
        if short:
            raise UserError(f"the validation slice ({fraction:g} of each class) holds fewer than 2 images of "
                            f"{', '.join(short)}: the copy audit trains its CNN on half of it and calibrates on the "
                            "other half; give more images per class or a larger validation fraction")
        v_fit = LabeledImages(real_train.images[fit_half], real_train.labels[fit_half], real_train.classes)
        model, cnn = _audit_cnn(v_fit, real_sha256, fraction, cache_dir, reporter)
        predict = make_predictor(model, test_time_flip=False)
        features, cnn["accuracy_on_v"] = _real_features(predict, real_train, reference, Path(cnn["path"]))
        per_class = {}
        for label in np.unique(real_train.labels):
            train = np.flatnonzero((real_train.labels == label) & ~held)
            ref = np.flatnonzero((real_train.labels == label) & reference)
            per_class[int(label)] = _Class(real_train.images[train], train, _PixelSpace(real_train.images[train]),
                                           _FeatureSpace(features[train]), real_train.images[ref], features[ref])
        pixel = np.concatenate([entry.pixels.nearest(entry.validation).distance for entry in per_class.values()])
        feature = np.concatenate([entry.features.nearest(entry.validation_features).distance
                                  for entry in per_class.values()])
        thresholds = {
            "false_flag_rate": false_flag_rate,
            "pixel_l2": float(np.quantile(pixel, false_flag_rate)),
            "feature_cosine": float(np.quantile(feature, false_flag_rate)),
            "exact_max_abs_difference": EXACT_LEVELS / 255,
            "calibrated_on": f"V → T nearest distances of {len(pixel):,} V images (all classes pooled)",
            "expected_false_flag_rate": f"{false_flag_rate:.2%} per space for an image drawn like V, at most "
                                        f"{2 * false_flag_rate:.2%} for the two together",
        }
        provenance = {
            "validation_fraction": fraction, "validation_fraction_from": fraction_source,
            "T": "each class's training images less its validation slice: what its generator trained on",
            "V": "the half of each class's validation slice the audit CNN did not train on (never trained on by "
                 "the generators either); the other half (V_fit) trained the audit CNN",
            "images": {"T": int(sum(len(entry.train) for entry in per_class.values())),
                       "V": int(reference.sum()), "V_fit": int(fit_half.sum())},
            "feature_cnn": cnn,
            "not_compared": "a synthetic image is compared with the T of its own class only; the shared start "
                            "trained on every class's T",
        }
        return cls(real_train.classes, per_class, predict, thresholds, provenance)

    def flags(self, images: np.ndarray, label: int) -> np.ndarray:
        """Which of the uint8 `images` of class `label` the audit flags as copies."""
        return self._measure(images, label)[0]

    def _measure(self, images: np.ndarray, label: int, features: np.ndarray | None = None):
        """(flagged, exact, pixel nearest, feature nearest) of `images` of class `label`."""
        entry = self.per_class[label]
        if features is None:
            _, features = self.predict(images)
        pixels, feats = entry.pixels.nearest(images), entry.features.nearest(features)
        nearest = entry.train[pixels.index]
        nearest = np.where(pixels.mirrored[:, None, None, None], nearest[:, :, ::-1], nearest)
        exact = np.abs(images.astype(np.int16) - nearest).reshape(len(images), -1).max(1) <= EXACT_LEVELS \
            if len(images) else np.zeros(0, bool)
        flagged = exact | (pixels.distance <= self.thresholds["pixel_l2"]) \
            | (feats.distance <= self.thresholds["feature_cosine"])
        return flagged, exact, pixels, feats


# --- the audit -------------------------------------------------------------------------------------------------------

def run_audit(synthetic: LabeledImages, detector: CopyDetector, seed: int = 0) -> dict:
    """audit.json's figures for `synthetic`, with the per-image rows of the closest pairs (`rows`, left out of
    audit.json) and the picture's pairs (`pairs`)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    _, features = detector.predict(synthetic.images)
    names = detector.classes.names
    classes, rows, pairs, z_terms = {}, [], [], []
    totals = dict.fromkeys(("synthetic", "flagged", "exact_copies", "validation", "validation_flagged"), 0)
    for label in range(len(names)):
        where = np.flatnonzero(synthetic.labels == label)
        if not len(where) or label not in detector.per_class:
            classes[names[label]] = None
            continue
        entry = detector.per_class[label]
        flagged, exact, pixels, feats = detector._measure(synthetic.images[where], label, features[where])
        v_flagged, _, v_pixels, v_feats = detector._measure(entry.validation, label, entry.validation_features)
        figures = _class_figures(flagged, exact, pixels, feats, v_flagged, v_pixels, v_feats, entry,
                                 synthetic.images[where], features[where], detector.thresholds, rng)
        classes[names[label]] = figures
        z_terms.append((len(entry.train), figures["feature"]["z_u"], figures["pixel"]["z_u"]))
        counts = {"synthetic": len(where), "flagged": int(flagged.sum()), "exact_copies": int(exact.sum()),
                  "validation": len(v_flagged), "validation_flagged": int(v_flagged.sum())}
        for key, value in counts.items():
            totals[key] += value
        rows += _rows(names[label], where, flagged, exact, pixels, feats, entry)
        pairs.append((names[label], _closest_pairs(synthetic.images[where], pixels, entry)))
    weights = np.array([weight for weight, _, _ in z_terms], float)
    overall = {
        "synthetic": totals["synthetic"], "flagged": totals["flagged"],
        "flagged_share": totals["flagged"] / max(totals["synthetic"], 1),
        "flagged_ci95": wilson_interval(totals["flagged"], totals["synthetic"]),
        "exact_copies": totals["exact_copies"],
        "validation_flagged_share": totals["validation_flagged"] / max(totals["validation"], 1),
        "validation_flagged_ci95": wilson_interval(totals["validation_flagged"], totals["validation"]),
        # Meehan et al.'s C_T with the classes as cells, each weighted by its share of T.
        "c_t_feature": float(np.dot(weights, [z for _, z, _ in z_terms]) / weights.sum()) if z_terms else None,
        "c_t_pixel": float(np.dot(weights, [z for _, _, z in z_terms]) / weights.sum()) if z_terms else None,
    }
    return {"audit_version": AUDIT_VERSION, "splits": detector.provenance, "thresholds": detector.thresholds,
            "overall": overall, "classes": classes, "note": NOT_A_GUARANTEE,
            "files": {"pairs_csv": PAIRS_CSV, "pairs_picture": PAIRS_PNG},
            "timings": {"audit_seconds": time.perf_counter() - started}, "rows": rows, "pairs": pairs}


def _class_figures(flagged, exact, pixels: _Nearest, feats: _Nearest, v_flagged, v_pixels: _Nearest,
                   v_feats: _Nearest, entry: _Class, images: np.ndarray, features: np.ndarray, thresholds: dict,
                   rng: np.random.Generator) -> dict:
    n, m = len(flagged), len(v_flagged)
    # DCR-style, against all of T: an image drawn like V has its nearest image of T ∪ V in T with probability
    # |T| / (|T| + |V|). (A subset of T as large as V makes that 0.5, but hides the copies of the images left out:
    # planted copies did not move it.)
    expected = len(entry.train) / (len(entry.train) + m)
    # Authenticity: a synthetic image is inauthentic when it is closer to its nearest T image than that image's own
    # nearest other T image is.
    own = _FeatureSpace(entry.features.unit).nearest(entry.features.unit).second
    sample = rng.choice(n, min(n, m), replace=False)  # PRDC with equal sample sizes
    return {
        "synthetic": n, "flagged": int(flagged.sum()), "flagged_share": float(flagged.mean()),
        "flagged_ci95": wilson_interval(int(flagged.sum()), n),
        "exact_copies": int(exact.sum()),
        "flagged_pixel": int((pixels.distance <= thresholds["pixel_l2"]).sum()),
        "flagged_feature": int((feats.distance <= thresholds["feature_cosine"]).sum()),
        "validation": {"images": m, "flagged": int(v_flagged.sum()), "flagged_share": float(v_flagged.mean()),
                       "flagged_ci95": wilson_interval(int(v_flagged.sum()), m)},
        "pixel": _space_figures(pixels, v_pixels, _PixelSpace(entry.validation).nearest(images).distance, expected),
        "feature": {**_space_figures(feats, v_feats,
                                     _FeatureSpace(entry.validation_features).nearest(features).distance, expected),
                    "authenticity": float(np.mean(feats.distance > own[feats.index])),
                    "validation_authenticity": float(np.mean(v_feats.distance > own[v_feats.index]))},
        "prdc": prdc(entry.validation_features, features[sample]),
    }


def _space_figures(nearest: _Nearest, v_nearest: _Nearest, to_validation: np.ndarray, expected: float) -> dict:
    share = float(np.mean((nearest.distance < to_validation) + 0.5 * (nearest.distance == to_validation)))
    return {"median_distance": float(np.median(nearest.distance)),
            "validation_median_distance": float(np.median(v_nearest.distance)),
            "median_ratio": float(np.median(nearest.ratio)),
            "validation_median_ratio": float(np.median(v_nearest.ratio)),
            "nearest_in_train_share": share, "nearest_in_train_expected": expected,
            # 0 for images drawn like V, 1 when every image is a copy
            "nearest_in_train_excess": (share - expected) / (1 - expected),
            "z_u": mann_whitney_z(nearest.distance, v_nearest.distance)}


def mann_whitney_z(synthetic: np.ndarray, validation: np.ndarray) -> float:
    """Meehan et al.'s Z_U: the Mann–Whitney U of the synthetic against the V distances to T, standardised; below 0
    the synthetic images are closer to T than V is (copying), above 0 farther."""
    n, m = len(synthetic), len(validation)
    ordered = np.sort(np.concatenate([synthetic, validation]))
    # Average ranks, so ties count half each way.
    ranks = (np.searchsorted(ordered, synthetic, "left") + np.searchsorted(ordered, synthetic, "right") + 1) / 2
    u = ranks.sum() - n * (n + 1) / 2
    return float((u - n * m / 2) / np.sqrt(n * m * (n + m + 1) / 12))


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> list[float] | None:
    """The Wilson score interval of a binomial share (95% by default); None without trials."""
    if not trials:
        return None
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [float(max(centre - half, 0.0)), float(min(centre + half, 1.0))]


def _rows(name: str, where, flagged, exact, pixels: _Nearest, feats: _Nearest, entry: _Class) -> list[dict]:
    order = np.argsort(pixels.distance, kind="stable")
    return [{"synthetic_index": int(where[i]), "class": name, "flagged": bool(flagged[i]), "exact": bool(exact[i]),
             "pixel_distance": round(float(pixels.distance[i]), 5), "pixel_ratio": round(float(pixels.ratio[i]), 5),
             "pixel_train_index": int(entry.train_index[pixels.index[i]]), "mirrored": bool(pixels.mirrored[i]),
             "feature_distance": round(float(feats.distance[i]), 6), "feature_ratio": round(float(feats.ratio[i]), 5),
             "feature_train_index": int(entry.train_index[feats.index[i]])} for i in order]


def _closest_pairs(images: np.ndarray, pixels: _Nearest, entry: _Class) -> np.ndarray:
    """The class's `PAIRS_PER_CLASS` synthetic images closest to T in pixels, each followed by its training image
    (mirrored when it matched mirrored)."""
    tiles = []
    for i in np.argsort(pixels.distance, kind="stable")[:PAIRS_PER_CLASS]:
        train = entry.train[pixels.index[i]]
        tiles += [images[i], train[:, ::-1] if pixels.mirrored[i] else train]
    return np.stack(tiles)


def save_audit(audit: dict, out_dir: str | Path) -> None:
    """audit.json (without the per-image rows), the closest pairs' CSV and picture in `out_dir`, atomically."""
    from cifar_synth.sheet import save_sample_sheet

    out_dir = Path(out_dir)
    rows = audit["rows"]
    with atomic_path(out_dir / PAIRS_CSV) as temp:
        with open(temp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["synthetic_index"])
            writer.writeheader()
            writer.writerows(rows)
    save_sample_sheet(out_dir / PAIRS_PNG, audit["pairs"])
    write_json_atomic(out_dir / AUDIT_JSON, audit_record(audit))


def audit_record(audit: dict) -> dict:
    """What audit.json holds: the audit without its per-image rows and pictures."""
    return {key: value for key, value in audit.items() if key not in ("rows", "pairs")}


# --- the split and the audit CNN -------------------------------------------------------------------------------------

def _held_out(labels: np.ndarray, fraction: float) -> np.ndarray:
    """The validation slice's mask, drawn exactly as `data.split_validation` draws it."""
    from cifar_synth.data import VALIDATION_SEED

    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        order = np.random.default_rng([VALIDATION_SEED, int(label)]).permutation(len(indices))
        held[indices[order[: int(len(indices) * fraction)]]] = True
    return held


def _fit_half(labels: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Half of each class's validation slice (rounded down), fixed: the audit CNN's training images."""
    fit = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        indices = np.flatnonzero(held & (labels == label))
        order = np.random.default_rng([1, int(label)]).permutation(len(indices))
        fit[indices[order[: len(indices) // 2]]] = True
    return fit


def _real_features(predict: Callable, real_train: LabeledImages, reference: np.ndarray,
                   cnn_path: Path) -> tuple[np.ndarray, float]:
    """The audit CNN's features of every training-split image (those of V_fit unused) and its accuracy on V_ref,
    cached beside the CNN: the CNN's key holds the data's checksum, so the file is theirs."""
    path = cnn_path.with_suffix(".features.npz")
    if path.is_file():
        with np.load(path) as cached:
            return cached["features"], float(cached["accuracy_on_v"])
    probabilities, features = predict(real_train.images)
    accuracy = float(np.mean(probabilities[reference].argmax(1) == real_train.labels[reference]))
    with atomic_path(path) as temp:
        np.savez(temp, features=features, accuracy_on_v=accuracy)
    return features, accuracy


def _audit_cnn(v_fit: LabeledImages, real_sha256: str, fraction: float, cache_dir: str | Path | None,
               reporter: Reporter):
    """The audit CNN trained on V_fit, from the cache or trained now and cached; and its description."""
    from cifar_synth.baseline_cache import default_cache_dir
    from cifar_synth.classifier import EvaluatorConfig, load_classifier, train_classifier

    config = EvaluatorConfig(**_CNN)
    key = {"data_sha256": real_sha256, "validation_fraction": fraction, "images": len(v_fit),
           "config": config.to_dict(), "classes": v_fit.classes.to_record()}
    folder = (Path(cache_dir) if cache_dir else default_cache_dir()) / "audit"
    path = folder / f"cnn-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.keras"
    cached = path.is_file()
    if cached:
        model = load_classifier(path, len(v_fit.classes))
    else:
        reporter.info(f"training the audit CNN on {len(v_fit):,} validation images (half of the validation slice; "
                      "never the images the generators trained on)")
        model = train_classifier(v_fit, config, 0, title="audit CNN", reporter=reporter)
        with atomic_path(path) as temp:
            model.save(temp)
    return model, {"description": f"the bundled CNN, widths {list(config.widths)}, {config.epochs} epochs, "
                                  "penultimate layer 'features' (global max pooling)",
                   "trained_on": f"V_fit: {len(v_fit):,} images, half of each class's validation slice; never T",
                   "config": config.to_dict(), "cached": cached, "path": str(path)}


# --- export --exclude-copies -----------------------------------------------------------------------------------------

class CopyExclusion:
    """The export's filter (a `filtering.ImageFilter`, or None for none) with the audit after it: a candidate is kept
    when the filter keeps it and the audit does not flag it; `excluded` counts the copies dropped per class."""

    def __init__(self, detector: CopyDetector, inner=None):
        self.detector, self.inner = detector, inner
        self.excluded: dict[str, int] = {}

    def start_class(self, batches, label: int, class_name: str):
        return self.inner.start_class(batches, label, class_name) if self.inner is not None else batches

    def class_record(self, class_name: str, candidates: int) -> dict:
        return self.inner.class_record(class_name, candidates) if self.inner is not None else {}

    def shortfall(self, class_name: str) -> tuple[str, str, str]:
        return (self.inner.shortfall(class_name) if self.inner is not None else
                ("the copy audit", "", "lower --count, or train this class's generator further"))

    def accepts(self, images: np.ndarray, label: int, class_name: str) -> np.ndarray:
        keep = self.inner.accepts(images, label, class_name) if self.inner is not None else np.ones(len(images), bool)
        copies = np.zeros(len(images), bool)
        copies[keep] = self.detector.flags(images[keep], label)
        self.excluded[class_name] = self.excluded.get(class_name, 0) + int(copies.sum())
        return keep & ~copies

    def __str__(self) -> str:
        return (f"{self.inner}, then " if self.inner is not None else "") + "the copy audit (copies excluded)"

    def describe(self) -> dict:
        """The filter's manifest entry, with the audit's rule, thresholds and the copies excluded per class."""
        return {**(self.inner.describe() if self.inner is not None else {"method": "none"}),
                "copies": {"rule": COPY_RULE, "thresholds": self.detector.thresholds,
                           "splits": self.detector.provenance, "excluded": self.excluded}}


COPY_RULE = ("a candidate is excluded when `cifar-synth audit` would flag it: an exact copy of a training image of its "
             "class, or closer to one than the thresholds in pixels or the audit CNN's features")


def copy_exclusion(runs_dir: Path, class_names: list[str], data_path: str | Path | None, inner,
                   reporter: Reporter | None = None) -> CopyExclusion:
    """`inner` (the export's filter or None) followed by the copy audit of the real data the runs in `runs_dir`
    trained on (`data_path`, as `open_real_data` reads it), with the validation slice their config.json records."""
    from cifar_synth.config import DEFAULT_VALIDATION_FRACTION
    from cifar_synth.data import open_real_data

    real = open_real_data(data_path)
    data = [_recorded_data(Path(runs_dir) / name) for name in class_names]
    if any(item.get("sha256") not in (None, real.sha256) for item in data):
        raise UserError(f"the generators in {runs_dir} trained on other real data than --data; exclude copies of the "
                        "data they trained on")
    fractions = {(item.get("validation") or {}).get("fraction") for item in data} - {None}
    if len(fractions) > 1:
        raise UserError(f"the runs in {runs_dir} held out different validation fractions ({sorted(fractions)}); "
                        "export them apart")
    fraction, source = (fractions.pop(), "the runs' config.json") if fractions else \
        (DEFAULT_VALIDATION_FRACTION, "the default (the runs record none)")
    detector = CopyDetector.calibrated(real.load("train"), real.sha256, fraction, source, reporter=reporter)
    return CopyExclusion(detector, inner)


def _recorded_data(run_dir: Path) -> dict:
    """The real data a run's config.json records; empty when it records none or has none."""
    from cifar_synth.runs import read_config

    try:
        return read_config(run_dir).get("data") or {}
    except (OSError, ValueError, AttributeError):  # no config.json, or not a JSON object: nothing recorded
        return {}


# --- in words: report.md and the dataset card ------------------------------------------------------------------------

def audit_markdown(audit: dict) -> list[str]:
    """The audit as Markdown lines: a verdict that follows the figures, the thresholds, a per-class table, and what
    passing it does not mean."""
    if "skipped" in audit:
        return ["## Copies of training images", "", f"Not audited: {audit['skipped']}.", ""]
    overall, thresholds, splits = audit["overall"], audit["thresholds"], audit["splits"]
    lines = ["## Copies of training images", "", verdict(overall), "",
             f"An image is flagged when it is an exact copy of a training image of its class (every pixel within "
             f"1/255) or closer to one than {thresholds['false_flag_rate']:.1%} of the never-trained-on validation "
             f"images are: ℓ2 distance {thresholds['pixel_l2']:.2f} over the 3,072 pixel values in [0, 1], mirror "
             f"images included, or cosine distance {thresholds['feature_cosine']:.4f} in the features of "
             f"{splits['feature_cnn']['description']}, trained on {splits['feature_cnn']['trained_on']}. Expected "
             f"false-flag rate: {thresholds['expected_false_flag_rate']}; measured on the validation images: "
             f"{overall['validation_flagged_share']:.2%}.", "",
             "| class | flagged | share (95% CI) | validation share | exact | nearest in T, excess | Z_U | "
             "authenticity (V's) | precision | recall | density | coverage |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, figures in audit["classes"].items():
        if figures is None:
            continue
        feature, prdc_figures = figures["feature"], figures["prdc"] or {}
        low, high = figures["flagged_ci95"]
        lines.append(
            f"| {name} | {figures['flagged']:,} | {figures['flagged_share']:.2%} ({low:.2%}–{high:.2%}) | "
            f"{figures['validation']['flagged_share']:.1%} | {figures['exact_copies']:,} | "
            f"{feature['nearest_in_train_excess']:.2f} | {feature['z_u']:.1f} | "
            f"{feature['authenticity']:.2f} ({feature['validation_authenticity']:.2f}) | "
            + " | ".join(f"{prdc_figures[key]:.2f}" if key in prdc_figures else "–"
                         for key in ("precision", "recall", "density", "coverage")) + " |")
    return [*lines, "",
            f"Nearest in T, excess: the share of synthetic images whose nearest image of T and V together is in T, "
            f"above the share expected by chance, over what is left (0 for images drawn like V, 1 for copies). Z_U: "
            f"Meehan et al.'s statistic of the distances to T, synthetic against V (below 0: closer than chance, "
            f"C_T over all classes {overall['c_t_feature']:.1f}). Precision, recall (k = 3), density, coverage "
            f"(k = 5): in the same features, against V, with as many synthetic images.", "",
            f"**{NOT_A_GUARANTEE}**", ""]


def verdict(overall: dict) -> str:
    """One sentence on what the audit found, with the flagged share's interval and the validation images' rate."""
    flagged, total = overall["flagged"], overall["synthetic"]
    low, high = overall["flagged_ci95"]
    rate = overall["validation_flagged_share"]
    if not flagged:
        return (f"The copy audit flagged none of the {total:,} synthetic images as a copy of an image its generator "
                f"trained on (95% upper bound {high:.3%}; validation images: {rate:.2%}).")
    beyond = low > overall["validation_flagged_ci95"][1]
    return (f"The copy audit flagged {flagged:,} of the {total:,} synthetic images ({flagged / total:.2%}, 95% CI "
            f"{low:.2%}–{high:.2%}) as copies of images their generators trained on, {overall['exact_copies']:,} of "
            f"them exact, against {rate:.2%} of the never-trained-on validation images: "
            + ("more than chance explains." if beyond else "no more than chance explains."))
