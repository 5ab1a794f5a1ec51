"""`cifar-synth evaluate`: how much a synthetic dataset is worth, measured with the bundled CNN and a second judge.

Headline: classification accuracy score (CAS), the accuracy on real test images of the CNN trained on synthetic images,
divided by the accuracy of the same CNN trained on as many real images per class. The second judge (a ResNet with
another recipe, `cifar_synth.judges`) gives the same figures, so that data made with the help of a CNN like the
bundled one cannot flatter itself unseen. Also: the real-trained CNN's accuracy on the synthetic images
(recognizability), Fréchet distance and KID in its penultimate-layer features, the diversity of each class, optional
real+synthetic training, and Inception FID when Inception weights are at hand.
"""

import contextlib
import datetime
import hashlib
import json
import socket
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cifar_synth import baseline_cache
from cifar_synth.classes import CLASS_NAMES
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, write_json_atomic
from cifar_synth.images import LabeledImages
from cifar_synth.provenance import package_versions

if TYPE_CHECKING:
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.judges import JudgeConfig

REPORT_JSON, REPORT_MD, CONFUSION_PNG = "report.json", "report.md", "confusion_synthetic.png"
REPORT_VERSION = 1
NOT_INCEPTION_FID = (
    "Fréchet distance and KID here are computed in the penultimate-layer features of this report's real-trained "
    "CNN, not in Inception-v3 features: they are not Inception FID and not comparable with published FID or KID "
    "values, only with reports that used the same evaluator configuration, seed and real data."
)
JUDGE_NAMES = ("cnn", "resnet")  # the bundled CNN first: CAS, recognizability and the feature figures are its
_KID_SUBSETS, _KID_SUBSET_SIZE = 50, 1000
_DIVERSITY_SAMPLE = 500  # images per class for the mean pairwise distance (O(n²))
# Keras' published InceptionV3 ImageNet weights without the classifier head, as keras.applications downloads them.
_INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                  "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
_INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
_INCEPTION_TIMEOUT_SECONDS = 10
_INCEPTION_SIZE = 299


def default_out_dir(synthetic_path: str | Path) -> Path:
    path = Path(synthetic_path).resolve()
    return Path("reports") / (path.stem if path.is_file() else path.name)


def subsample_per_class(data: LabeledImages, per_class: int, seed: int) -> LabeledImages:
    """At most `per_class` images of each class, chosen by `seed`, kept in their original order."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(data.labels):
        indices = np.flatnonzero(data.labels == label)
        keep.append(np.sort(rng.choice(indices, min(per_class, len(indices)), replace=False)))
    keep = np.concatenate(keep)
    return LabeledImages(data.images[keep], data.labels[keep])


def evaluate_synthetic(
    synthetic_path: str | Path,
    data_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    config: "EvaluatorConfig | None" = None,
    seed: int = 0,
    mix: bool = False,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    inception: bool = True,
    quiet: bool = False,
    warn: Callable[[str], None] | None = None,
    judges: Sequence[str] = JUDGE_NAMES,
    judge_config: "JudgeConfig | None" = None,
) -> dict:
    """Evaluate the synthetic dataset at `synthetic_path` against the real CIFAR-10 at `data_path`.

    Writes report.json, report.md and confusion_synthetic.png to `out_dir` (default `reports/<synthetic name>`) and
    returns the report. `config` is an `EvaluatorConfig` (default: the `default` budget). `judges` names the
    classifiers trained: "cnn" (required) and optionally "resnet", the second judge, configured by `judge_config`
    (default: the budget named like `config`'s, else `default`). The real-trained baselines are cached in
    `cache_dir` (default `~/.cache/cifar-synth/evaluator`) unless `use_cache` is false. `inception=False`
    skips Inception FID; otherwise it uses `inception_weights` or tries to download Keras' weights. Warnings go
    into the report and, as they arise, to `warn`.
    """
    from cifar_synth.card import update_card
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.data import open_real_data
    from cifar_synth.judges import JUDGES, JudgeConfig
    from cifar_synth.synthetic import load_synthetic

    started = time.perf_counter()
    config = config or EvaluatorConfig.budget("default")
    second_judges = check_judges(judges)[1:]
    if judge_config is None:
        judge_config = JudgeConfig.budget(config.budget_name if config.budget_name in JudgeConfig.BUDGETS
                                          else "default")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(synthetic_path)
    cache_dir = Path(cache_dir) if cache_dir is not None else baseline_cache.default_cache_dir()
    if inception_weights is not None and not Path(inception_weights).is_file():
        raise UserError(f"Inception weights file {inception_weights} does not exist")
    timings, warnings = {}, []

    def warning(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    synthetic = load_synthetic(synthetic_path)
    synthetic_counts = np.bincount(synthetic.labels, minlength=len(CLASS_NAMES))
    present = [label for label in range(len(CLASS_NAMES)) if synthetic_counts[label]]
    missing = [CLASS_NAMES[label] for label in range(len(CLASS_NAMES)) if not synthetic_counts[label]]
    if missing:
        warning(
            f"the synthetic data has no images of {', '.join(missing)}: the synthetic-trained CNN never sees "
            f"{'this class' if len(missing) == 1 else 'these classes'}, so it scores (close to) 0 on "
            f"{'its' if len(missing) == 1 else 'their'} real test images, which counts in the CAS; the other "
            f"per-class figures are given for the classes present only")
    real = open_real_data(data_path)
    real_train, real_test = real.load("train"), real.load("test")
    real_counts = np.bincount(real_train.labels, minlength=len(CLASS_NAMES))
    per_class = int(min(real_counts.min(), synthetic_counts[present].min()))
    timings["load_seconds"] = time.perf_counter() - started

    real_subset = subsample_per_class(real_train, per_class, seed)
    synthetic_subset = subsample_per_class(synthetic, per_class, seed)
    cnn = JUDGES["cnn"]
    baseline_model, baseline = _baseline(cnn, config, real, real_subset, real_test, seed, per_class,
                                         cache_dir, use_cache, quiet)
    timings["baseline_seconds"] = baseline["train_seconds"] if not baseline["cached"] else 0.0
    classifiers = {"real": baseline}
    _, classifiers["synthetic"] = _train_and_test(cnn, synthetic_subset, real_test, config, seed,
                                                  "synthetic-trained", quiet)
    timings["synthetic_seconds"] = classifiers["synthetic"]["train_seconds"]
    if mix:
        both = LabeledImages(np.concatenate([real_subset.images, synthetic_subset.images]),
                             np.concatenate([real_subset.labels, synthetic_subset.labels]))
        _, classifiers["mix"] = _train_and_test(cnn, both, real_test, config, seed, "real+synthetic-trained",
                                                quiet)
        timings["mix_seconds"] = classifiers["mix"]["train_seconds"]
    other_judges = {}
    for name in second_judges:
        other_judges[name] = _second_judge(JUDGES[name], judge_config, real, real_subset, synthetic_subset,
                                           real_test, seed, per_class, cache_dir, use_cache, quiet)
        timings.update({f"{name}_{key}_seconds": 0.0 if classifier["cached"] else classifier["train_seconds"]
                        for key, classifier in other_judges[name]["classifiers"].items()})

    metrics_started = time.perf_counter()
    figures = _feature_figures(baseline_model, real_test, synthetic, present, config.test_time_flip, seed)
    timings["feature_metrics_seconds"] = time.perf_counter() - metrics_started
    if inception:
        inception_started = time.perf_counter()
        figures["inception_fid"] = _inception_fid(real_test, synthetic, inception_weights, seed)
        timings["inception_fid_seconds"] = time.perf_counter() - inception_started
        if "skipped" in figures["inception_fid"]:
            warning(figures["inception_fid"]["skipped"])
    else:
        figures["inception_fid"] = {"skipped": "not requested (--no-inception-fid)"}
    timings["total_seconds"] = time.perf_counter() - started

    cas, baseline_accuracy = classifiers["synthetic"]["accuracy"], baseline["accuracy"]
    report = {
        "report_version": REPORT_VERSION,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "headline": {
            **_cas_figures(cas, baseline_accuracy),
            "mix_accuracy": classifiers["mix"]["accuracy"] if mix else None,
        },
        "baseline_cached": baseline["cached"],
        "train_images_per_class": per_class,
        "synthetic": {
            "path": str(Path(synthetic_path).resolve()),
            "images": len(synthetic),
            "counts": dict(zip(CLASS_NAMES, synthetic_counts.tolist())),
            "missing_classes": missing,
            "content_sha256": _content_sha256(synthetic),
            "manifest": _manifest(Path(synthetic_path)),
        },
        "real_data": real.describe(),
        "seed": seed,
        "config": config.to_dict(),
        "classifiers": classifiers,
        "judges": other_judges,
        **figures,
        "warnings": warnings,
        "versions": {**package_versions(), "matplotlib": metadata.version("matplotlib")},
        "timings": timings,
    }
    _write_report(report, out_dir)
    update_card(synthetic_path, report)  # an export's dataset card shows these figures
    return report


# --- training and testing ---------------------------------------------------------------------------------------------

def check_judges(judges: Sequence[str]) -> list[str]:
    """The judges in report order, the bundled CNN first; an unknown, repeated or missing one is a user error."""
    judges = list(judges)
    unknown = [name for name in judges if name not in JUDGE_NAMES]
    if unknown:
        raise UserError(f"unknown judge {unknown[0]!r}; choose from {', '.join(JUDGE_NAMES)}")
    if "cnn" not in judges:
        raise UserError("the judges must include cnn: CAS, recognizability and the feature figures are the bundled "
                        "CNN's; add a second judge beside it, e.g. --judges cnn,resnet")
    if len(set(judges)) != len(judges):
        raise UserError(f"a judge is named twice in {','.join(judges)}")
    return [name for name in JUDGE_NAMES if name in judges]


def _cas_figures(cas: float, baseline_accuracy: float) -> dict:
    return {"cas": cas, "baseline_accuracy": baseline_accuracy,
            "cas_ratio": cas / baseline_accuracy if baseline_accuracy else None}


def _second_judge(judge, config, real, real_subset: LabeledImages, synthetic_subset: LabeledImages,
                  real_test: LabeledImages, seed: int, per_class: int, cache_dir: Path, use_cache: bool,
                  quiet: bool) -> dict:
    """The same CAS figures from another classifier family: its cached or fresh real baseline, its synthetic run."""
    _, baseline = _baseline(judge, config, real, real_subset, real_test, seed, per_class, cache_dir, use_cache,
                            quiet)
    _, synthetic = _train_and_test(judge, synthetic_subset, real_test, config, seed,
                                   f"{judge.name} synthetic-trained", quiet)
    return {"description": judge.description, "config": config.to_dict(), "baseline_cached": baseline["cached"],
            **_cas_figures(synthetic["accuracy"], baseline["accuracy"]),
            "classifiers": {"real": baseline, "synthetic": synthetic}}


def _train_and_test(judge, train: LabeledImages, test: LabeledImages, config, seed: int, title: str, quiet: bool):
    from cifar_synth.classifier import make_predictor

    started = time.perf_counter()
    model = judge.train(train, config, seed, title=title, quiet=quiet)
    seconds = time.perf_counter() - started
    probabilities, _ = make_predictor(model, config.test_time_flip)(test.images)
    return model, {**_accuracy(probabilities.argmax(1), test.labels), "train_images": len(train),
                   "train_seconds": seconds, "cached": False}


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Overall and per-class accuracy, and the confusion matrix (rows: true class, columns: predicted)."""
    confusion = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(1)
    return {
        "accuracy": float(np.trace(confusion) / max(totals.sum(), 1)),
        "per_class_accuracy": {name: float(confusion[i, i] / totals[i]) if totals[i] else None
                               for i, name in enumerate(CLASS_NAMES)},
        "confusion": confusion.tolist(),
    }


def _baseline(judge, config, real, train: LabeledImages, test: LabeledImages, seed: int, per_class: int,
              cache_dir: Path, use_cache: bool, quiet: bool):
    """The real-trained classifier and its test metrics, from the cache when it holds this exact baseline."""
    key = baseline_cache.baseline_key(judge.name, real.sha256, seed, per_class, config.to_dict())
    entry = baseline_cache.entry_dir(cache_dir, judge.name, key)
    if use_cache and baseline_cache.is_complete(entry):
        model, metrics = baseline_cache.load_entry(entry)
        return model, {**metrics, "cached": True, "cache_entry": str(entry)}
    title = "real-trained baseline" if judge.name == baseline_cache.CNN else f"{judge.name} real-trained baseline"
    model, metrics = _train_and_test(judge, train, test, config, seed, title, quiet)
    baseline_cache.store_entry(entry, key, model, metrics)
    return model, {**metrics, "cache_entry": str(entry)}


# --- figures in the real-trained CNN's features -----------------------------------------------------------------------

def _feature_figures(model, real_test: LabeledImages, synthetic: LabeledImages, present: list[int],
                     test_time_flip: bool, seed: int) -> dict:
    from cifar_synth.classifier import FEATURE_LAYER, make_predictor

    predict = make_predictor(model, test_time_flip)
    _, real_features = predict(real_test.images)
    synthetic_probabilities, synthetic_features = predict(synthetic.images)
    recognized = _accuracy(synthetic_probabilities.argmax(1), synthetic.labels)
    rng = np.random.default_rng(seed)
    per_class = {name: None for name in CLASS_NAMES}
    fd, kid, diversity = dict(per_class), dict(per_class), dict(per_class)
    for label in present:
        real_class = real_features[real_test.labels == label]
        synthetic_class = synthetic_features[synthetic.labels == label]
        name = CLASS_NAMES[label]
        fd[name] = frechet_distance(real_class, synthetic_class)
        kid[name] = kernel_inception_distance(real_class, synthetic_class, rng)
        real_spread = mean_pairwise_distance(real_class, rng)
        synthetic_spread = mean_pairwise_distance(synthetic_class, rng)
        diversity[name] = {"synthetic": synthetic_spread, "real": real_spread,
                           "ratio": synthetic_spread / real_spread if real_spread else None}
    return {
        "recognizability": {"accuracy": recognized["accuracy"],
                            "per_class_accuracy": recognized["per_class_accuracy"],
                            "confusion": recognized["confusion"]},
        "feature_metrics": {
            "note": NOT_INCEPTION_FID,
            "features": f"real-trained CNN, layer '{FEATURE_LAYER}' ({real_features.shape[1]} dimensions)",
            "real_images": len(real_test),
            "synthetic_images": len(synthetic),
            "frechet_distance": {"overall": frechet_distance(real_features, synthetic_features), "per_class": fd},
            "kid": {"overall": kernel_inception_distance(real_features, synthetic_features, rng), "per_class": kid},
        },
        "diversity": {
            "description": f"mean pairwise Euclidean distance between the features of up to {_DIVERSITY_SAMPLE} "
                          "images of a class; ratio = synthetic / real (well below 1: mode collapse)",
            "per_class": diversity,
        },
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(Σa^½ Σb Σa^½)^½), by symmetric eigendecompositions (stable for singular Σ)."""
    if len(a) < 2 or len(b) < 2:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    distance = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(distance, 0.0))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> dict | None:
    """Unbiased MMD² with the cubic polynomial kernel (x·y/d + 1)³, mean and std over random subsets."""
    size = min(_KID_SUBSET_SIZE, len(a), len(b))
    if size < 2:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    dims = a.shape[1]
    estimates = []
    for _ in range(_KID_SUBSETS):
        x, y = a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / dims + 1) ** 3, (y @ y.T / dims + 1) ** 3, (x @ y.T / dims + 1) ** 3)
        off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        estimates.append(off_diagonal - 2 * k_xy.mean())
    return {"mean": float(np.mean(estimates)), "std": float(np.std(estimates)), "subsets": _KID_SUBSETS,
            "subset_size": size}


def mean_pairwise_distance(features: np.ndarray, rng: np.random.Generator) -> float | None:
    if len(features) < 2:
        return None
    if len(features) > _DIVERSITY_SAMPLE:
        features = features[rng.choice(len(features), _DIVERSITY_SAMPLE, replace=False)]
    x = features.astype(np.float64)
    squared = np.sum(x * x, 1)
    distances = np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2 * x @ x.T, 0, None))
    return float(distances.sum() / (len(x) * (len(x) - 1)))


def _inception_fid(real_test: LabeledImages, synthetic: LabeledImages, weights: str | Path | None,
                   seed: int) -> dict:
    """Standard FID in InceptionV3 pool features, or {"skipped": why} when no weights can be had."""
    import keras

    if weights is None:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_INCEPTION_TIMEOUT_SECONDS)
        try:
            # Keras announces the download on stdout, which must stay clean for `--json`.
            with contextlib.redirect_stdout(sys.stderr):
                weights = keras.utils.get_file(Path(_INCEPTION_URL).name, _INCEPTION_URL, file_hash=_INCEPTION_MD5,
                                               cache_subdir="models")
        except Exception as error:  # noqa: BLE001 — any failure to fetch only means: no Inception FID
            return {"skipped": f"Inception FID skipped: no Inception weights (download failed: "
                               f"{str(error).splitlines()[0][:120]}); pass --inception-weights PATH to a Keras "
                               f"InceptionV3 .h5 file to get it"}
        finally:
            socket.setdefaulttimeout(previous)
    network = _inception_network(Path(weights))
    # As many synthetic images per class as the real test set has, so both sides have the same size and balance.
    per_class = int(np.bincount(real_test.labels).max())
    sample = subsample_per_class(synthetic, per_class, seed)
    real_features = _inception_features(network, real_test.images)
    synthetic_features = _inception_features(network, sample.images)
    return {"value": frechet_distance(real_features, synthetic_features), "weights": str(weights),
            "real_images": len(real_test), "synthetic_images": len(sample),
            "note": "InceptionV3 2048-d pool features of images resized 32→299 (bilinear); with this few images "
                    "FID is biased upward against the usual 50,000-image figure"}


def _inception_network(weights: Path):
    import keras

    shape = (_INCEPTION_SIZE, _INCEPTION_SIZE, 3)
    try:
        return keras.applications.InceptionV3(include_top=False, weights=str(weights), input_shape=shape,
                                              pooling="avg")
    except (ValueError, OSError):
        pass  # perhaps the full weights file, with the ImageNet classifier head
    try:
        full = keras.applications.InceptionV3(include_top=True, weights=str(weights))
    except (ValueError, OSError) as error:
        raise UserError(f"{weights} is not a Keras InceptionV3 weights file ({error})") from None
    return keras.Model(full.input, full.get_layer("avg_pool").output)


def _inception_features(network, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(batch):
        resized = tf.image.resize(tf.cast(batch, tf.float32), (_INCEPTION_SIZE, _INCEPTION_SIZE))
        return network(resized / 127.5 - 1.0, training=False)  # InceptionV3's preprocess_input

    return np.concatenate([run(images[start:start + 100]).numpy() for start in range(0, len(images), 100)])


# --- provenance -------------------------------------------------------------------------------------------------------

def _content_sha256(data: LabeledImages) -> str:
    """sha256 over the pixels and labels as loaded, whatever file format carried them."""
    digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    digest.update(data.labels.astype("<i8").tobytes())
    return digest.hexdigest()


def _manifest(path: Path) -> dict | None:
    """The export's manifest.json, if `path` is an export directory with one."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None  # load_synthetic has already accepted the data; an unreadable manifest only loses provenance


# --- report files -----------------------------------------------------------------------------------------------------

def _write_report(report: dict, out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / CONFUSION_PNG) as temp:
            _confusion_picture(np.array(report["classifiers"]["synthetic"]["confusion"]), temp)
        with atomic_path(out_dir / REPORT_MD) as temp:
            temp.write_text(render_markdown(report))
        write_json_atomic(out_dir / REPORT_JSON, report)
    except OSError as error:
        raise UserError(f"cannot write the report to {out_dir}: {error}") from None


def _confusion_picture(confusion: np.ndarray, path: Path) -> None:
    # The object-oriented Agg canvas, not pyplot: no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    figure = Figure(figsize=(7.5, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(rows):
        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if value > 0.5 else "black")
    axes.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class (real test images)")
    axes.set_title("Synthetic-trained CNN on real test images (row-normalised)")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.savefig(path, format="png", dpi=110)


def percent(value) -> str:
    """0.873 → "87.3%", None → "–"."""
    return "–" if value is None else f"{value:.1%}"


def _number(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict) -> str:
    """The report as Markdown a person can read, with the confusion picture beside it."""
    head, classifiers = report["headline"], report["classifiers"]
    features, diversity = report["feature_metrics"], report["diversity"]["per_class"]
    trained = [(key, title, classifiers) for key, title in (
        ("real", "real-trained"), ("synthetic", "synthetic-trained"), ("mix", "real+synthetic-trained"))
        if key in classifiers]
    trained += [(key, f"{name} {key}-trained", judge["classifiers"])
                for name, judge in report.get("judges", {}).items() for key in ("real", "synthetic")]
    lines = [
        f"# Synthetic data evaluation: {Path(report['synthetic']['path']).name}",
        "",
        f"- Synthetic data: `{report['synthetic']['path']}` ({report['synthetic']['images']:,} images)",
        f"- Real data: `{report['real_data']['source']}` (sha256 `{report['real_data']['sha256']}`)",
        f"- Training images per class for every CNN: {report['train_images_per_class']:,} "
        f"(real+synthetic: that many of each)",
        f"- Evaluator: budget `{report['config']['budget_name']}`, widths {report['config']['widths']}, "
        f"{report['config']['epochs']} epochs, seed {report['seed']}; baseline "
        f"{'from cache' if report['baseline_cached'] else 'trained now'}",
        *(f"- Second judge `{name}`: {judge['description']}; widths {judge['config']['widths']}, "
          f"{judge['config']['epochs']} epochs; baseline {'from cache' if judge['baseline_cached'] else 'trained now'}"
          for name, judge in report.get("judges", {}).items()),
        "",
        "## Headline",
        "",
        "| figure | value |",
        "|---|---|",
        f"| CAS: synthetic-trained accuracy on real test images | {percent(head['cas'])} |",
        f"| baseline: real-trained accuracy on real test images | {percent(head['baseline_accuracy'])} |",
        f"| CAS / baseline | {_number(head['cas_ratio'], 3)} |",
    ]
    for name, judge in report.get("judges", {}).items():
        lines += [
            f"| second judge ({name}): CAS | {percent(judge['cas'])} |",
            f"| second judge ({name}): real-trained baseline | {percent(judge['baseline_accuracy'])} |",
            f"| second judge ({name}): CAS / baseline | {_number(judge['cas_ratio'], 3)} |",
        ]
    if head["mix_accuracy"] is not None:
        lines.append(f"| real+synthetic-trained accuracy on real test images | {percent(head['mix_accuracy'])} |")
    lines += [
        f"| recognizability: real-trained accuracy on synthetic images | "
        f"{percent(report['recognizability']['accuracy'])} |",
        f"| Fréchet distance in CNN features (not Inception FID) | "
        f"{_number(features['frechet_distance']['overall'])} |",
        f"| KID in CNN features (not Inception KID) | {_kid(features['kid']['overall'])} |",
        f"| Inception FID | {_inception_cell(report['inception_fid'])} |",
        "",
        f"**{NOT_INCEPTION_FID}**",
        "",
        "## Per class",
        "",
        "Accuracy on real test images of each trained CNN (and of the second judge's); recognizability, Fréchet "
        "distance, KID and diversity "
        "of the synthetic images of each class (diversity ratio = synthetic / real mean pairwise feature distance; "
        "well below 1 means mode collapse).",
        "",
        "| class | " + " | ".join(title for _, title, _ in trained)
        + " | recognizability | FD | KID | diversity ratio |",
        "|---" * (len(trained) + 5) + "|",
    ]
    for name in CLASS_NAMES:
        accuracies = " | ".join(percent(source[key]["per_class_accuracy"][name]) for key, _, source in trained)
        ratio = diversity[name]["ratio"] if diversity[name] else None
        lines.append(
            f"| {name} | {accuracies} | {percent(report['recognizability']['per_class_accuracy'][name])} | "
            f"{_number(features['frechet_distance']['per_class'][name])} | "
            f"{_kid(features['kid']['per_class'][name])} | {_number(ratio)} |")
    lines += ["", "## Confusion of the synthetic-trained CNN", "", f"![confusion matrix]({CONFUSION_PNG})", ""]
    if report["warnings"]:
        lines += ["## Warnings", "", *(f"- {warning}" for warning in report["warnings"]), ""]
    timings = ", ".join(f"{name.removesuffix('_seconds')} {seconds:.0f} s"
                        for name, seconds in report["timings"].items())
    versions = ", ".join(f"{name} {version}" for name, version in report["versions"].items())
    lines += ["## Provenance", "", f"- Timings: {timings}", f"- Versions: {versions}",
              f"- Synthetic content sha256: `{report['synthetic']['content_sha256']}`",
              "- Every figure, the configuration and the data checksums are in `report.json`.", ""]
    return "\n".join(lines)


def _kid(kid: dict | None) -> str:
    return "–" if kid is None else f"{kid['mean']:.4f} ± {kid['std']:.4f}"


def _inception_cell(fid: dict) -> str:
    return f"{fid['value']:.2f}" if "value" in fid else f"not computed: {fid['skipped']}"
