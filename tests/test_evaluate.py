"""`cifar-synth evaluate` on tiny, easily learned data: ten classes, each a solid colour plus noise.

A tiny CNN learns these in a few epochs, so a "synthetic" set that copies the real images must score like the real
baseline and one of pure noise near chance (10%): both checks are meaningful, and each run takes seconds.
"""

import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from conftest import assert_user_error, write_tree
from rich.console import Console
from typer.testing import CliRunner

from cifar_synth import evaluator, fits, inception, metrics
from cifar_synth.classes import CIFAR10
from cifar_synth.classifier import EvaluatorConfig
from cifar_synth.errors import UserError
from cifar_synth.evaluator import EvaluateOptions
from cifar_synth.executors.job import run_job
from cifar_synth.cli import app
from cifar_synth.formats.csv import COLUMNS as CSV_COLUMNS
from cifar_synth.formats.images import encode_png
from cifar_synth.formats.parquet import schema as parquet_schema
from cifar_synth.images import LabeledImages
from cifar_synth.judges import JudgeConfig
from cifar_synth.report import Report
from cifar_synth.reporter import Reporter

TRAIN_PER_CLASS, TEST_PER_CLASS = 40, 20
TINY = EvaluatorConfig(widths=(8, 8, 16, 16), epochs=10, batch_size=32, learning_rate=0.2)
TINY_JUDGE = JudgeConfig(widths=(8, 8, 16), epochs=10, batch_size=32)
COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [128, 128, 128], [0, 0, 0]])


def colour_images(per_class: int, seed: int, classes=range(10)) -> LabeledImages:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array(list(classes), np.int64), per_class)
    noise = rng.normal(0, 25, (len(labels), 32, 32, 3))
    return LabeledImages(np.clip(COLOURS[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8), labels)


def write_parquet(path: Path, data: LabeledImages) -> Path:
    images = [{"bytes": encode_png(image), "path": f"{i}.png"} for i, image in enumerate(data.images)]
    pq.write_table(pa.table({"img": images, "label": data.labels}, schema=parquet_schema(CIFAR10)), path)
    return path


def write_csv(path: Path, data: LabeledImages) -> Path:
    names = np.asarray(CIFAR10.names)[data.labels % len(CIFAR10.names)]  # any name for a bad label: it is rejected first
    rows = np.column_stack([data.labels, names, data.images.reshape(len(data), -1)])
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, LabeledImages]:
    """A class-folder tree of real data, and its training split as loaded."""
    root = tmp_path_factory.mktemp("real")
    train = colour_images(TRAIN_PER_CLASS, seed=1)
    write_tree(root / "train", train)
    write_tree(root / "test", colour_images(TEST_PER_CLASS, seed=2))
    return root, train


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One baseline cache for the module: the baseline is trained once and reused by every test after the first."""
    return tmp_path_factory.mktemp("cache")


def evaluate(synthetic: Path, real, cache: Path, out: Path, judges=("cnn",), reporter: Reporter | None = None,
             **options) -> Report:
    """Only the bundled CNN unless `judges` says otherwise: the second judge doubles the training time."""
    options = EvaluateOptions(real[0], out, TINY, cache_dir=cache, inception=False, judges=judges,
                              judge_config=TINY_JUDGE, **options)
    return evaluator.evaluate_synthetic(synthetic, options, reporter or Reporter(quiet=True))


@pytest.fixture(scope="module")
def copy_report(real, cache, tmp_path_factory) -> tuple[Report, Path]:
    """A "synthetic" Parquet set that is a copy of the real training images, evaluated with --mix (trains 3 CNNs)."""
    folder = tmp_path_factory.mktemp("copy")
    report = evaluate(write_parquet(folder / "copy.parquet", real[1]), real, cache, folder / "report",
                      judges=("cnn", "resnet"), mix=True)
    return report, folder / "report"


def test_report_files_and_keys(copy_report):
    report, out = copy_report
    assert Report.load(out) == report  # report.json holds the whole typed report
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report.to_dict()))
    assert (out / "confusion_synthetic.png").read_bytes().startswith(b"\x89PNG")
    markdown = (out / "report.md").read_text()
    assert "not Inception FID" in markdown and "confusion_synthetic.png" in markdown
    assert {"headline", "baseline_cached", "train_images_per_class", "synthetic", "real_data", "seed", "config",
            "classifiers", "recognizability", "feature_metrics", "inception_fid", "diversity", "warnings",
            "versions", "timings", "judges"} <= set(report.to_dict())
    assert report.baseline_cached is False  # the first evaluation in the module's cache
    assert report.train_images_per_class == TRAIN_PER_CLASS
    assert set(report.classifiers) == {"real", "synthetic", "mix"}
    assert report.classifiers["mix"].train_images == 2 * TRAIN_PER_CLASS * 10
    for classifier in report.classifiers.values():
        assert set(classifier.per_class_accuracy) == set(CIFAR10.names)
        assert np.array(classifier.confusion).sum() == 10 * TEST_PER_CLASS
    assert report.headline.mix_accuracy == report.classifiers["mix"].accuracy
    assert "not Inception FID" in report.feature_metrics.note
    assert set(report.feature_metrics.kid["per_class"]) == set(CIFAR10.names)
    assert len(report.real_data["sha256"]) == 64 and report.config["widths"] == list(TINY.widths)
    assert "skipped" in report.inception_fid and not report.warnings
    judge = report.judges["resnet"]
    assert judge.config["widths"] == list(TINY_JUDGE.widths) and judge.baseline_cached is False
    assert set(judge.classifiers) == {"real", "synthetic"}  # the judge is not trained on the --mix set
    for classifier in judge.classifiers.values():
        assert set(classifier.per_class_accuracy) == set(CIFAR10.names)
        assert np.array(classifier.confusion).sum() == 10 * TEST_PER_CLASS
    assert "second judge (resnet): CAS" in markdown and "resnet synthetic-trained" in markdown
    # Which judge made each figure: budget, architecture and precision, in report.json and report.md.
    assert report.config["architecture"] == "classic" and report.config["precision"] in ("float32", "mixed_bfloat16")
    assert f"budget `custom` (classic architecture, widths {list(TINY.widths)}" in markdown
    assert f"precision" not in judge.config or judge.config["precision"] == TINY_JUDGE.precision


def test_committed_reports_load_and_keep_their_keys():
    # Reports written before the typed report (benchmarks/results, the quality protocol's) read back unchanged,
    # apart from what they predate: the second judges ({} when absent), the honesty labels ([] when absent), the
    # synthetic classifiers' cache entry and the top-5 figures (None: these are all of 10 classes).
    paths = sorted((Path(__file__).resolve().parent.parent / "benchmarks" / "results").glob("*/report*.json"))
    assert paths
    for path in paths:
        stored = json.loads(path.read_text())
        stored.setdefault("judges", {})
        stored.setdefault("honesty", [])
        stored.setdefault("audit", None)  # the copy audit (issue 36)
        for figures in [stored["headline"], *stored["judges"].values()]:
            figures.setdefault("cas_top5", None)
            figures.setdefault("baseline_top5", None)
        for classifiers in [stored["classifiers"], *(judge["classifiers"] for judge in stored["judges"].values())]:
            classifiers["synthetic"].setdefault("cache_entry", None)
            for classifier in classifiers.values():
                classifier.setdefault("top5_accuracy", None)
        assert Report.load(path).to_dict() == stored


def test_a_report_that_cannot_be_read_is_one_user_error(tmp_path):
    (tmp_path / "report.json").write_text('{"headline": {}}')
    with pytest.raises(UserError, match="cannot read the evaluation report .*report.json"):
        Report.load(tmp_path)
    with pytest.raises(UserError, match="cannot read the evaluation report"):
        Report.load(tmp_path / "absent.json")


def assert_scores_like_the_baseline(report: Report) -> None:
    head = report.headline
    assert head.baseline_accuracy >= 0.9  # the task is learnable, so the comparison means something
    assert head.cas == pytest.approx(head.baseline_accuracy, abs=0.05)
    assert head.cas_ratio == pytest.approx(head.cas / head.baseline_accuracy)
    assert report.recognizability.accuracy >= 0.9
    ratios = [report.diversity.per_class[name]["ratio"] for name in CIFAR10.names]
    assert all(0.7 < ratio < 1.4 for ratio in ratios)
    judge = report.judges["resnet"]
    assert judge.baseline_accuracy >= 0.9 and judge.cas == pytest.approx(judge.baseline_accuracy, abs=0.05)
    assert judge.cas_ratio == pytest.approx(judge.cas / judge.baseline_accuracy)


def test_a_copy_of_the_real_images_scores_like_the_baseline(copy_report):
    assert_scores_like_the_baseline(copy_report[0])


@pytest.mark.parametrize("fmt", ["csv", "images"])
def test_other_formats_score_alike_and_reuse_the_cached_baseline(fmt, real, cache, copy_report, tmp_path):
    if fmt == "images":
        synthetic = tmp_path / "synthetic"
        write_tree(synthetic / "images", real[1])
    else:
        synthetic = write_csv(tmp_path / "synthetic.csv", real[1])
    report = evaluate(synthetic, real, cache, tmp_path / "report", judges=("cnn", "resnet"))
    assert report.baseline_cached is True and report.timings["baseline_seconds"] == 0.0
    assert report.judges["resnet"].baseline_cached is True and report.timings["resnet_real_seconds"] == 0.0
    assert report.synthetic["content_sha256"] == copy_report[0].synthetic["content_sha256"]
    assert_scores_like_the_baseline(report)
    # Same images, same subsample, same seed: the same network, exactly (training is deterministic).
    assert report.headline.cas == copy_report[0].headline.cas
    assert report.judges["resnet"].cas == copy_report[0].judges["resnet"].cas


def test_no_cache_retrains_the_same_baseline(real, cache, copy_report, tmp_path):
    report = evaluate(write_parquet(tmp_path / "copy.parquet", real[1]), real, cache, tmp_path / "report",
                      use_cache=False)
    assert report.baseline_cached is False and report.timings["baseline_seconds"] > 0
    assert report.classifiers["real"].accuracy == copy_report[0].classifiers["real"].accuracy
    assert len(list(cache.glob("*/classifier.keras"))) == 1  # the judge's entry does not confuse the export filter
    assert len(list(cache.glob("resnet/*/classifier.keras"))) == 1


def test_the_cnn_baseline_cache_entry_is_where_it_was_before_the_second_judge(real, cache, copy_report):
    # Baselines cached before the second judge (and before the architecture, precision and whitening fields)
    # existed must stay valid: the same key, hash and files.
    before = {k: v for k, v in TINY.to_dict().items()
              if k not in ("budget_name", "architecture", "precision", "whitening_epsilon")}
    assert TINY.architecture == "classic" and TINY.precision == "float32"
    key = {"cache_version": 1, "real_sha256": copy_report[0].real_data["sha256"], "seed": 0,
           "per_class": TRAIN_PER_CLASS, "config": before}
    entry = cache / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    assert copy_report[0].classifiers["real"].cache_entry == str(entry)
    assert json.loads((entry / "metrics.json").read_text())["key"] == key
    assert (entry / "classifier.keras").is_file()


def test_pure_noise_scores_near_chance_and_far_in_features(real, cache, copy_report, tmp_path):
    rng = np.random.default_rng(3)
    noise = LabeledImages(rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 40))
    report = evaluate(write_parquet(tmp_path / "noise.parquet", noise), real, cache, tmp_path / "report",
                      judges=("cnn", "resnet"))
    copy = copy_report[0].feature_metrics

    assert report.headline.cas <= 0.3
    assert report.headline.cas_ratio <= 0.35
    assert report.judges["resnet"].cas <= 0.3
    assert report.feature_metrics.frechet_distance["overall"] > 10 * copy.frechet_distance["overall"]
    assert report.feature_metrics.kid["overall"]["mean"] > copy.kid["overall"]["mean"] + 0.1


def test_a_missing_class_is_reported_and_scores_nothing(real, cache, tmp_path):
    synthetic = write_parquet(tmp_path / "synthetic.parquet", colour_images(40, seed=6, classes=range(1, 10)))
    warnings = io.StringIO()
    report = evaluate(synthetic, real, cache, tmp_path / "report",
                      reporter=Reporter(quiet=True, err_console=Console(file=warnings, width=400)))

    assert report.synthetic["missing_classes"] == ["airplane"]
    assert any("airplane" in warning for warning in report.warnings)
    assert warnings.getvalue().startswith("Warning: the synthetic data has no images of airplane")  # as it arises
    assert report.classifiers["synthetic"].per_class_accuracy["airplane"] <= 0.2
    assert report.classifiers["synthetic"].per_class_accuracy["truck"] >= 0.8
    assert report.recognizability.per_class_accuracy["airplane"] is None
    assert report.feature_metrics.frechet_distance["per_class"]["airplane"] is None
    assert "airplane" in (tmp_path / "report" / "report.md").read_text().split("## Warnings")[1]


def test_inception_fid_is_skipped_with_a_notice_when_weights_cannot_be_had(monkeypatch):
    import keras

    def offline(*args, **kwargs):  # neither downloadable nor in Keras' cache, whatever the user's ~/.keras holds
        raise OSError("URL fetch failure: [Errno 101] Network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    data = colour_images(2, seed=7)
    result = inception.inception_fid(data, data, None, seed=0)
    assert result["skipped"].startswith("Inception FID skipped") and "--inception-weights" in result["skipped"]
    assert "Network is unreachable" in result["skipped"] and "value" not in result


def test_feature_distances_are_zero_for_identical_sets_and_grow_with_a_shift():
    features = np.random.default_rng(8).normal(size=(300, 6))
    rng = np.random.default_rng(0)
    assert metrics.frechet_distance(features, features) == pytest.approx(0, abs=1e-6)
    assert metrics.frechet_distance(features, features + 2) == pytest.approx(6 * 4, rel=1e-6)
    same = metrics.kernel_inception_distance(features[:150], features[150:], rng)["mean"]
    shifted = metrics.kernel_inception_distance(features[:150], features[150:] + 2, rng)["mean"]
    assert abs(same) < 0.05 * shifted
    assert metrics.sampled_pairwise_distance(features * 0.1, rng) == pytest.approx(
        0.1 * metrics.sampled_pairwise_distance(features, rng), rel=0.05)


def test_top5_accuracy_counts_the_true_class_among_the_five_most_probable_above_ten_classes():
    probabilities = np.tile(np.arange(12, dtype=np.float32), (3, 1))  # classes 7–11 most probable, 11 first
    assert metrics.top_k_accuracy(probabilities, np.array([11, 7, 6])) == pytest.approx(2 / 3)
    assert metrics.top_k_accuracy(probabilities[:, :10], np.array([9, 5, 0])) is None  # CIFAR-10: not reported


def with_moments(mean, covariance, count: int, seed: int) -> np.ndarray:
    """`count` samples whose sample mean and sample covariance (np.cov) are exactly `mean` and `covariance`."""
    z = np.random.default_rng(seed).normal(size=(count, len(mean)))
    z -= z.mean(0)
    white = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return white @ np.linalg.cholesky(np.asarray(covariance)).T + mean


def test_frechet_distance_with_unequal_covariances_matches_the_closed_form():
    # Non-commuting 2×2 covariances: for a 2×2 matrix M with non-negative eigenvalues, Tr √M = √(tr M + 2 √det M),
    # so FD = ‖μa − μb‖² + tr Σa + tr Σb − 2 √(tr(Σa Σb) + 2 √(det Σa det Σb)), with no matrix square root.
    mean_a, mean_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    cov_a, cov_b = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.3], [-0.3, 3.0]])
    a, b = with_moments(mean_a, cov_a, 500, seed=1), with_moments(mean_b, cov_b, 700, seed=2)
    cross = np.sqrt(np.trace(cov_a @ cov_b) + 2 * np.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b)))
    expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    assert expected == pytest.approx(8.9293, abs=1e-4)  # the formula itself, evaluated once by hand
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # Diagonal covariances: FD = ‖μa − μb‖² + Σ (σa − σb)².
    a = with_moments([0, 0, 0], np.diag([1.0, 4.0, 9.0]), 400, seed=3)
    b = with_moments([1, 0, 0], np.diag([4.0, 4.0, 4.0]), 400, seed=4)
    assert metrics.frechet_distance(a, b) == pytest.approx(1 + (1 - 2) ** 2 + 0 + (3 - 2) ** 2, rel=1e-9)


def test_kid_on_fixed_vectors_matches_the_unbiased_mmd_by_hand():
    # d = 1, kernel (x·y + 1)³. Within x = {0, 1}: k(0,1) = 1; within y = {2, 3}: k(2,3) = 343; across:
    # k(0,2) = k(0,3) = 1, k(1,2) = 27, k(1,3) = 64, mean 23.25. Unbiased MMD² = 1 + 343 − 2·23.25 = 297.5.
    # Each subset is the whole set (2 < 1,000), so every subset gives the same value.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    kid = metrics.kernel_inception_distance(x, y, np.random.default_rng(0))
    assert kid["mean"] == pytest.approx(297.5) and kid["std"] == pytest.approx(0, abs=1e-9)
    assert kid["subset_size"] == 2
    # d = 2 scales the dot product by 1/2: within x = {(0,0), (2,2)}: k = 1; within y = {(1,0), (0,1)}: k = 1;
    # across: k((0,0), ·) = 1, k((2,2),(1,0)) = k((2,2),(0,1)) = 2³ = 8, mean 4.5. MMD² = 1 + 1 − 9 = −7.
    x, y = np.array([[0.0, 0.0], [2.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.kernel_inception_distance(x, y, np.random.default_rng(0))["mean"] == pytest.approx(-7.0)


# --- the command line ---------------------------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args])


def cli_options(synthetic: Path, real) -> list[str]:
    """Every trained classifier in seconds: the quick budget for one epoch, with --mix and the second judge."""
    return ["--synthetic", str(synthetic), "--data", str(real[0]), "--budget", "quick", "--epochs", "1", "--mix",
            "--no-inception-fid"]


@pytest.fixture(scope="module")
def cli_report(real, tmp_path_factory) -> tuple[Path, dict, Path]:
    """The synthetic set, the report `evaluate --json` printed (all classifiers trained in its process), its --out
    (beside it, the `cache` of its baselines)."""
    folder = tmp_path_factory.mktemp("cli")
    synthetic = write_csv(folder / "synthetic.csv", colour_images(20, seed=9))
    result = invoke(*cli_options(synthetic, real), "--cache-dir", str(folder / "cache"), "--out",
                    str(folder / "report"), "--json")
    assert result.exit_code == 0, result.output
    return synthetic, json.loads(result.stdout), folder / "report"


def test_cli_writes_the_report_and_prints_json(cli_report):
    _, report, out = cli_report
    assert report == json.loads((out / "report.json").read_text())
    assert report["config"]["budget_name"] == "quick" and report["config"]["epochs"] == 1
    assert report["train_images_per_class"] == 20  # min(40 real, 20 synthetic)
    assert report["judges"]["resnet"]["config"]["budget_name"] == "quick"
    assert report["judges"]["resnet"]["config"]["epochs"] == 1


def test_cli_judges_cnn_alone_trains_no_second_judge(real, tmp_path):
    synthetic = write_csv(tmp_path / "synthetic.csv", colour_images(10, seed=9))
    result = invoke("--synthetic", str(synthetic), "--data", str(real[0]), "--budget", "quick", "--epochs", "1",
                    "--cache-dir", str(tmp_path / "cache"), "--no-inception-fid", "--out", str(tmp_path / "r"),
                    "--judges", "cnn", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["judges"] == {}
    assert not (tmp_path / "cache" / "resnet").exists()


def test_cli_summary_table_compares_per_class_accuracy(copy_report):
    from rich.console import Console

    from cifar_synth.cli.evaluate import print_summary

    console = Console(record=True, width=120)
    print_summary(console, copy_report[0], copy_report[1])
    text = console.export_text()
    assert "real-trained" in text and "synthetic-trained" in text and "real+synthetic" in text
    assert "resnet real" in text and "second judge resnet: CAS" in text
    assert all(name in text for name in CIFAR10.names) and "ratio" in text and "CAS" in text


def test_cli_errors_exit_1_without_a_traceback(real, tmp_path):
    data = ["--data", str(real[0]), "--cache-dir", str(tmp_path / "cache")]
    assert_user_error(invoke("--synthetic", str(tmp_path / "absent"), *data), "does not exist")

    empty = tmp_path / "empty"
    (empty / "images" / "cat").mkdir(parents=True)
    assert_user_error(invoke("--synthetic", str(empty), *data), "holds no images")

    bad_labels = colour_images(2, seed=10)
    bad_labels.labels[3] = 12
    assert_user_error(invoke("--synthetic", str(write_csv(tmp_path / "labels.csv", bad_labels)), *data),
                      "label 12 is outside")

    small = tmp_path / "small" / "images" / "cat"
    small.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(small / "0.png")
    assert_user_error(invoke("--synthetic", str(tmp_path / "small"), *data),
                      "is a 16×16 RGB image; images must be 32×32 RGB")

    unreadable = tmp_path / "broken.parquet"
    unreadable.write_bytes(b"not parquet")
    assert_user_error(invoke("--synthetic", str(unreadable), *data), "not a readable parquet file")

    synthetic = str(write_parquet(tmp_path / "ok.parquet", colour_images(2, seed=11)))
    assert_user_error(invoke("--synthetic", synthetic, *data, "--budget", "huge"), "unknown budget 'huge'")
    assert_user_error(invoke("--synthetic", synthetic, *data, "--judges", "cnn,vit"), "unknown judge 'vit'")
    assert_user_error(invoke("--synthetic", synthetic, *data, "--judges", "resnet"), "must include cnn")
    assert_user_error(invoke("--synthetic", synthetic, *data, "--judges", "cnn,cnn"), "named twice")
    negative = invoke("--synthetic", synthetic, *data, "--seed", "-1")
    assert_user_error(negative, "--seed must be a whole number from 0 to 4294967295, got -1")
    assert len(negative.output.strip().splitlines()) == 1
    assert_user_error(invoke("--synthetic", synthetic, *data, "--inception-weights", str(tmp_path / "none.h5")),
                      "does not exist")


def test_inception_fid_with_a_weights_file(tmp_path):
    import keras

    # Random weights in the InceptionV3 layout: the figure is meaningless, the path through the code is the real one.
    keras.utils.set_random_seed(0)
    weights = tmp_path / "inception.weights.h5"
    keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg").save_weights(weights)
    real, synthetic = colour_images(1, seed=12), colour_images(2, seed=13)
    result = inception.inception_fid(real, synthetic, weights, seed=0)
    assert result["real_images"] == 10 and result["synthetic_images"] == 10
    same = inception.inception_fid(real, real, weights, seed=0)  # the same images on both sides
    assert result["value"] > 0 and same["value"] <= 1e-6 * result["value"]


def test_cas_spread_retrains_the_reports_judge_as_the_evaluator_did(copy_report):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import cas_spread

    report, _ = copy_report
    again = cas_spread.retrain(report, "cnn", report.seed)  # the report's own seed: its own figures again
    assert again["accuracy"] == pytest.approx(report.classifiers["synthetic"].accuracy, abs=0.01)
    assert again["per_class_accuracy"].keys() == report.classifiers["synthetic"].per_class_accuracy.keys()


# --- the classifiers as parallel tasks (--executor) -----------------------------------------------------------------

def numbers(value, path: str = "") -> dict:
    """Every number in a report part by its path ("/diversity/per_class/cat/ratio"), flat (pytest.approx is)."""
    if isinstance(value, dict):
        return {key: number for name, part in value.items() for key, number in numbers(part, f"{path}/{name}").items()}
    if isinstance(value, list):
        return {key: number for index, part in enumerate(value)
                for key, number in numbers(part, f"{path}[{index}]").items()}
    return {path: value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


def assert_same_figures(report: dict, expected: dict) -> None:
    """The figures of `expected` within the float rounding that other TensorFlow thread counts bring into training
    (measured: the same predictions; feature figures up to 0.3% apart, KIDs near 0 up to 2%). Overall accuracies and
    their ratios may move by an image or two; per-class ones and confusions, where one image is 5%, are left out."""
    for part, tolerance in [("classifiers", {"abs": 0.02}), ("judges", {"abs": 0.02}), ("headline", {"abs": 0.02}),
                            ("recognizability", {"abs": 0.02}), ("feature_metrics", {"rel": 0.03, "abs": 1e-4}),
                            ("diversity", {"rel": 0.03, "abs": 1e-4})]:
        want = {key: value for key, value in numbers(expected[part]).items()
                if not any(word in key for word in ("per_class_accuracy", "confusion", "seconds"))}
        got = {key: value for key, value in numbers(report[part]).items() if key in want}
        assert got == pytest.approx(want, **tolerance), part


@pytest.mark.slow
def test_cli_executor_local_trains_the_classifiers_as_parallel_tasks_with_the_in_process_figures(real, cli_report,
                                                                                                 tmp_path):
    synthetic, here, _ = cli_report
    out, cache = tmp_path / "tasks", tmp_path / "cache"
    tasks = invoke(*cli_options(synthetic, real), "--cache-dir", str(cache), "--out", str(out),
                   "--executor", "local", "--parallel", "2", "--cpus-per-task", "1")
    assert tasks.exit_code == 0, tasks.output
    assert "Training summary" in tasks.output  # the live board's summary, one row per classifier
    names = ["cnn-real", "cnn-synthetic", "cnn-mix", "resnet-real", "resnet-synthetic"]
    assert all(name in tasks.output for name in names)
    report = json.loads((out / "report.json").read_text())
    # Same data, subsamples and seeds, each task in a process of its own: the same networks up to the float rounding
    # of other thread counts, so the same predictions and, closely, the same feature figures.
    assert_same_figures(report, here)
    assert report["timings"]["parallel_training_seconds"] > 0
    # The baselines went into the cache as in this process, and each task left its log and its result.
    assert report["classifiers"]["real"]["cache_entry"].startswith(str(cache))
    assert len(list(cache.glob("*/classifier.keras"))) == 1 and len(list(cache.glob("resnet/*/classifier.keras"))) == 1
    state = out / ".cifar-synth"
    pids = set()
    for name in names:
        status = json.loads((state / "status" / f"{name}.json").read_text())
        assert status["state"] == "done" and status["result"]["accuracy"] == pytest.approx(
            {"cnn": report["classifiers"], "resnet": report["judges"]["resnet"]["classifiers"]}[
                name.split("-")[0]][name.split("-")[1]]["accuracy"])
        assert "TensorFlow threads: 1 intra-op, 1 inter-op" in (state / "logs" / f"{name}.log").read_text()
        pids.add(status["pid"])
    assert len(pids | {os.getpid()}) == 6
    assert not list(state.glob("work-*")) and not list(state.glob("session-*"))  # the data and models sent are gone

    # With the baselines cached, only the synthetic-trained classifiers are tasks.
    again = invoke(*cli_options(synthetic, real)[:-2], "--no-inception-fid", "--cache-dir", str(cache), "--out",
                   str(tmp_path / "again"), "--executor", "local", "--parallel", "2", "--judges", "cnn")
    assert again.exit_code == 0, again.output
    assert "cnn-synthetic" in again.output and "cnn-real" not in again.output
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["baseline_cached"] is True
    assert report["headline"]["cas"] == pytest.approx(here["headline"]["cas"], abs=0.02)


def test_a_classifier_task_that_cannot_see_the_report_directory_says_so(tmp_path):
    fit = fits.Fit("cnn", TINY, "synthetic")
    job = fits.FitJob(fit, (tmp_path / "synthetic.npz",), tmp_path / "test.npz", tmp_path / "m.keras", 0,
                           tmp_path / "report" / ".cifar-synth", "elsewhere", 1, str(tmp_path))
    with pytest.raises(UserError, match=r"--out \(the report directory\) must be on storage every node shares"):
        run_job(job)


def test_a_failed_classifier_task_is_named_with_its_error_and_log(tmp_path):
    from cifar_synth.executors import ExecutorOptions, engine_for
    from cifar_synth.executors.board import drive
    from cifar_synth.executors.job import start_session

    state = tmp_path / "report" / ".cifar-synth"
    job = fits.FitJob(fits.Fit("cnn", TINY, "synthetic"), (tmp_path / "absent.npz",), tmp_path / "t.npz",
                           tmp_path / "m.keras", 0, state, start_session(state), 1, str(tmp_path))
    warnings = io.StringIO()
    reporter = Reporter(quiet=True, err_console=Console(file=warnings, width=400))
    with pytest.raises(UserError, match=r"1 of 1 classifiers failed \(cnn-synthetic\); run the same command again"):
        drive(engine_for(ExecutorOptions(parallel=2, unit="task")), [[job]], reporter)
    assert "cnn-synthetic failed: FileNotFoundError" in warnings.getvalue()
    assert f"log: {state / 'logs' / 'cnn-synthetic.log'}" in warnings.getvalue()
    assert "Traceback" in (state / "logs" / "cnn-synthetic.log").read_text()


def test_cli_executor_options_are_checked_before_any_work(real, tmp_path):
    common = ["--synthetic", str(tmp_path / "absent.parquet"), "--data", str(real[0])]
    assert_user_error(invoke(*common, "--cpus-per-task", "0"), "--cpus-per-task must be at least 1, got 0")
    assert_user_error(invoke(*common, "--gpus-per-task", "1"), "--gpus-per-task needs --executor ray or slurm")
    assert_user_error(invoke(*common, "--address", "auto"), "--address is for --executor ray")
    assert_user_error(invoke(*common, "--executor", "dask"), "unknown executor 'dask'")


def test_cli_executor_without_its_extra_is_named(monkeypatch, real, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now fails as if it were not installed
    synthetic = write_parquet(tmp_path / "s.parquet", colour_images(2, seed=11))
    result = invoke("--synthetic", str(synthetic), "--data", str(real[0]), "--executor", "slurm")
    assert_user_error(result, "pip install 'cifar-synth[slurm]'")


def test_cli_executor_slurm_where_there_is_none_names_what_is_missing(monkeypatch, real, tmp_path):
    pytest.importorskip("submitit", reason="the Slurm tests need the slurm extra")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    synthetic = write_parquet(tmp_path / "s.parquet", colour_images(2, seed=11))
    result = invoke("--synthetic", str(synthetic), "--data", str(real[0]), "--executor", "slurm")
    assert_user_error(result, "--executor slurm needs Slurm's sbatch and srun, not found on PATH")


def evaluate_with_cached_baseline(real, cli_report, out: Path, **executor) -> Report:
    """`cli_report`'s evaluation with the bundled CNN alone, as tasks of `executor`, its baseline from that report's
    cache: one task, the synthetic-trained CNN. Its report, after checking that the task ran in a worker of its own
    and gave the in-process figures."""
    from cifar_synth.executors import ExecutorOptions

    synthetic, here, here_out = cli_report
    options = EvaluateOptions(real[0], out, EvaluatorConfig.budget("quick", epochs=1),
                              cache_dir=here_out.parent / "cache", inception=False, judges=("cnn",),
                              executor=ExecutorOptions(unit="task", cpus_per_class=1, **executor))
    report = evaluator.evaluate_synthetic(synthetic, options, Reporter(quiet=True))
    assert report.baseline_cached is True
    assert report.headline.cas == pytest.approx(here["headline"]["cas"], abs=0.02)
    status = json.loads((out / ".cifar-synth" / "status" / "cnn-synthetic.json").read_text())
    assert status["state"] == "done" and status["pid"] != os.getpid()
    assert not (out / ".cifar-synth" / "status" / "cnn-real.json").exists()
    return report


@pytest.mark.slow
def test_executor_ray_trains_the_classifier_as_a_ray_task(ray_cluster, real, cli_report, tmp_path):
    evaluate_with_cached_baseline(real, cli_report, tmp_path / "report", executor="ray")
    assert ray_cluster.is_initialized(), "a cluster the caller started is left running"


@pytest.mark.slow
def test_executor_slurm_trains_the_classifier_as_a_job_of_a_submitit_array(real, cli_report, tmp_path):
    pytest.importorskip("submitit", reason="the Slurm tests need the slurm extra")
    # submitit's local executor: the same job array, as subprocesses of this machine.
    evaluate_with_cached_baseline(real, cli_report, tmp_path / "report", executor="slurm", slurm_cluster="local",
                                  slurm_time="10")
    assert list((tmp_path / "report" / ".cifar-synth" / "slurm").iterdir()), "submitted through submitit"


# --- honesty: what the export's manifest says its generators and filter saw ------------------------------------------

def leaky_export(folder: Path, data: LabeledImages) -> Path:
    """An export directory of `data` whose manifest says dog's generator trained on the test split (--include-test),
    cat's through the run it started from, and that a classifier of unknown provenance filtered it."""
    export = folder / "leaky"
    (export / "data").mkdir(parents=True)
    write_parquet(export / "data" / "train.parquet", data)
    runs = {"dog": {"training": {"include_test": True}, "data": {"splits": ["train", "test"]}},
            "cat": {"training": {"include_test": False, "saw_test_split": True}, "data": {"splits": ["train"]}},
            "truck": {"training": {"include_test": False}, "data": {"splits": ["train"]}}}
    manifest = {"format_version": 2, "formats": ["parquet"],
                "files": [{"format": "parquet", "path": "data/train.parquet"}],
                "classes": [{"name": name, "run_config": config} for name, config in runs.items()],
                "filter": {"method": "classifier", "classifier": {"path": "mine.keras", "from_evaluator_cache": False}}}
    (export / "manifest.json").write_text(json.dumps(manifest))
    return export


def test_an_export_whose_generators_saw_the_test_split_is_refused(real, tmp_path):
    result = invoke("--synthetic", str(leaky_export(tmp_path, real[1])), "--data", str(real[0]), "--out",
                    str(tmp_path / "report"))
    assert_user_error(result, "the generators of dog, cat saw the test split")
    assert "--allow-test-leak" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()  # refused before any work


def test_allow_test_leak_labels_the_report_not_honest(real, cache, copy_report, tmp_path):
    from cifar_synth.cli.evaluate import print_summary
    from cifar_synth.honesty import TEST_LEAK, UNKNOWN_FILTER

    report = evaluate(leaky_export(tmp_path, real[1]), real, cache, tmp_path / "report", allow_test_leak=True)
    assert report.honesty == [f"{TEST_LEAK} (dog, cat)", f"{UNKNOWN_FILTER}: mine.keras"]
    assert Report.load(tmp_path / "report").honesty == report.honesty
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"**{TEST_LEAK} (dog, cat)**" in markdown.split("## ")[0]  # above everything else
    summary = io.StringIO()
    print_summary(Console(file=summary, width=400), report, tmp_path / "report")
    assert "not honest: generators saw the test split (dog, cat)" in summary.getvalue()
    assert copy_report[0].honesty == []  # a plain file: nothing known against it
