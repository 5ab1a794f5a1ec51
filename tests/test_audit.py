"""The copy audit (`cifar-synth audit`, `export --exclude-copies`) and PRDC, on tiny random images.

Random uniform images are all about equally far apart, so a copy of a training image (exact, with σ = 2/255 noise, or
mirrored) stands out by orders of magnitude, and images drawn like the validation slice are flagged at the rate the
thresholds were calibrated for. The audit CNN is shrunk to a few filters: the pixel space finds these copies alone.
"""

import json

import numpy as np
import pytest
from conftest import REPO_ROOT, assert_user_error, random_images, run_export, write_tree
from typer.testing import CliRunner

from cifar_synth import audit
from cifar_synth.classes import CIFAR10
from cifar_synth.cli import app
from cifar_synth.data import split_validation
from cifar_synth.errors import UserError
from cifar_synth.images import LabeledImages
from cifar_synth.metrics import prdc

PER_CLASS, FRACTION = 40, 0.5  # T: 20 images per class, V: 20 (10 train the audit CNN, 10 calibrate)
TINY_CNN = {"widths": (4, 4, 8, 8), "epochs": 1, "batch_size": 32, "budget_name": "audit-test"}


@pytest.fixture(autouse=True)
def tiny_cnn(monkeypatch):
    monkeypatch.setattr(audit, "_CNN", TINY_CNN)


def real_train() -> LabeledImages:
    labels = np.repeat(np.arange(len(CIFAR10.names)), PER_CLASS)
    return LabeledImages(random_images(len(labels), seed=3), labels)


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audit, "_CNN", TINY_CNN)
        return audit.CopyDetector.calibrated(real_train(), "sha", FRACTION, "test", false_flag_rate=0.05,
                                             cache_dir=tmp_path_factory.mktemp("cache"))


def training_images(detector, label: int) -> tuple[np.ndarray, np.ndarray]:
    """T of class `label`: its images and their indices in the training split."""
    entry = detector.per_class[label]
    return entry.train, entry.train_index


def planted(detector, seed: int = 0) -> tuple[LabeledImages, dict]:
    """Class 0 (airplane): 5 exact copies, 5 with σ = 2/255 noise, 5 mirrored, then 45 fresh images; class 1 only
    fresh. Returns the set and {kind: (synthetic indices, training indices)}."""
    rng = np.random.default_rng(seed)
    train, train_index = training_images(detector, 0)
    sources = rng.choice(len(train), 15, replace=False)
    exact = train[sources[:5]]
    noisy = np.clip(train[sources[5:10]] + rng.normal(0, 2, (5, 32, 32, 3)), 0, 255).astype(np.uint8)
    mirrored = train[sources[10:], :, ::-1]
    images = np.concatenate([exact, noisy, mirrored, random_images(45, seed=100 + seed), random_images(60, 200)])
    labels = np.repeat([0, 1], [60, 60])
    kinds = {name: (np.arange(5) + 5 * i, train_index[sources[5 * i:5 * i + 5]])
             for i, name in enumerate(("exact", "noisy", "mirrored"))}
    return LabeledImages(images, labels), kinds


def test_the_split_is_the_training_validation_split():
    data = real_train()
    _, validation = split_validation(data, FRACTION)
    held = audit._held_out(data.labels, FRACTION)
    assert np.array_equal(data.images[held], validation.images)
    fit = audit._fit_half(data.labels, held)
    assert not (fit & ~held).any() and fit.sum() == held.sum() // 2


def test_copies_are_flagged_with_their_source(detector):
    synthetic, kinds = planted(detector)
    result = audit.run_audit(synthetic, detector)
    rows = {row["synthetic_index"]: row for row in result["rows"]}
    for kind, (indices, sources) in kinds.items():
        for index, source in zip(indices, sources):
            assert rows[index]["flagged"], (kind, rows[index])
            assert rows[index]["pixel_train_index"] == source, kind
            assert rows[index]["exact"] == (kind != "noisy")
            assert rows[index]["mirrored"] == (kind == "mirrored")
    airplane = result["classes"]["airplane"]
    assert airplane["exact_copies"] == 10 and airplane["flagged"] >= 15
    lower, upper = airplane["flagged_ci95"]
    assert lower < airplane["flagged_share"] < upper
    assert result["classes"]["bird"] is None  # no synthetic images of the class


def test_images_drawn_like_v_are_flagged_at_about_the_calibrated_rate(detector):
    fresh = LabeledImages(random_images(2000, seed=7), np.repeat(np.arange(10), 200))
    result = audit.run_audit(fresh, detector)
    assert result["overall"]["exact_copies"] == 0
    # Two spaces at 5% each: at most 10% expected; the calibration set is small (10 per class).
    assert 0 < result["overall"]["flagged_share"] < 0.2
    # Against 20 T and 10 V images per class each class's excess is noisy; their mean less so.
    assert abs(np.mean([figures["pixel"]["nearest_in_train_excess"] for figures in result["classes"].values()])) < 0.2


def test_planted_copies_move_the_class_statistics(detector):
    clean = audit.run_audit(LabeledImages(random_images(60, 100), np.zeros(60, np.int64)), detector)
    copied = audit.run_audit(planted(detector)[0], detector)
    before, after = clean["classes"]["airplane"], copied["classes"]["airplane"]
    assert after["flagged_share"] > before["flagged_share"]
    assert after["pixel"]["z_u"] < before["pixel"]["z_u"]
    assert after["pixel"]["nearest_in_train_excess"] > before["pixel"]["nearest_in_train_excess"] + 0.1


def test_mann_whitney_z_is_zero_for_the_same_sample_and_negative_when_closer():
    values = np.linspace(0, 1, 101)
    assert audit.mann_whitney_z(values, values) == pytest.approx(0)
    assert audit.mann_whitney_z(values * 0.5, values) < -3


def test_the_verdict_follows_the_figures():
    clean = {"synthetic": 50_000, "flagged": 0, "flagged_ci95": [0.0, 0.00008], "exact_copies": 0,
             "validation_flagged_share": 0.002, "validation_flagged_ci95": [0.001, 0.005]}
    assert "flagged none of the 50,000 synthetic images" in audit.verdict(clean)
    chance = {**clean, "flagged": 150, "flagged_ci95": [0.0026, 0.0035]}
    assert "flagged 150 of the 50,000" in audit.verdict(chance) and "no more than chance" in audit.verdict(chance)
    copied = {**clean, "flagged": 1_000, "flagged_ci95": [0.019, 0.021], "exact_copies": 400}
    assert "400 of them exact" in audit.verdict(copied) and "more than chance explains" in audit.verdict(copied)


def test_the_card_and_report_md_give_the_audit(detector):
    from cifar_synth.card import render_card
    from cifar_synth.report import Report, render_markdown

    result = audit.run_audit(planted(detector)[0], detector)
    report = Report.load(REPO_ROOT / "benchmarks/results/protocol-steps-2.5x/report.json")
    report.audit = audit.audit_record(result)
    manifest = json.loads((REPO_ROOT / "benchmarks/results/protocol-steps-2.5x/manifest.json").read_text())
    for text in (render_card(manifest, report), render_markdown(report)):
        assert audit.verdict(result["overall"]) in text
        assert "membership inference" in text and "| airplane | " in text


def test_cli_writes_audit_json_csv_and_picture(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "_CNN", TINY_CNN)
    data = real_train()
    root = tmp_path / "real"
    write_tree(root / "train", data)
    write_tree(root / "test", LabeledImages(random_images(20, 9), np.repeat(np.arange(10), 2)))
    synthetic = write_tree(tmp_path / "synthetic", LabeledImages(data.images[::4], data.labels[::4]))
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, ["audit", str(synthetic), "--data", str(root), "--out", str(out),
                                      "--validation-fraction", "0.5", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    record = json.loads((out / audit.AUDIT_JSON).read_text())
    assert set(record["classes"]) == set(CIFAR10.names)
    # A quarter of the training split, half of it T: those are exact copies, the V images among them are not.
    assert record["overall"]["exact_copies"] == sum(not held for held in audit._held_out(data.labels, 0.5)[::4])
    assert all({"flagged", "flagged_share"} <= set(figures) for figures in record["classes"].values())
    assert "membership inference" in record["note"]
    assert (out / audit.PAIRS_PNG).is_file()
    assert (out / audit.PAIRS_CSV).read_text().count("\n") == len(data.labels[::4]) + 1


def test_a_validation_slice_too_small_to_halve_is_one_user_error(tmp_path):
    with pytest.raises(UserError, match="fewer than 2 images of airplane"):
        audit.CopyDetector.calibrated(real_train(), "sha", 0.04, "test", cache_dir=tmp_path)


def test_cli_refuses_a_false_flag_rate_out_of_range(tmp_path):
    result = CliRunner().invoke(app, ["audit", str(tmp_path), "--false-flag-rate", "0.7"])
    assert_user_error(result, "--false-flag-rate must be between 0 and 0.5")


# --- PRDC ------------------------------------------------------------------------------------------------------------

def test_prdc_of_two_gaussian_samples_reproduces_the_reference_values():
    # clovaai/generative-evaluation-prdc's README: 10,000 real and fake N(0, I) samples in 1,000 dimensions, k = 5
    # give precision 0.4772, recall 0.4705, density 1.0555, coverage 0.9735 ("may fluctuate due to randomness").
    rng = np.random.default_rng(0)
    real, fake = (rng.standard_normal((10_000, 1_000), dtype=np.float32) for _ in range(2))
    figures = prdc(real, fake, 5, 5)
    assert figures["precision"] == pytest.approx(0.4772, abs=0.02)
    assert figures["recall"] == pytest.approx(0.4705, abs=0.02)
    assert figures["density"] == pytest.approx(1.0555, abs=0.03)
    assert figures["coverage"] == pytest.approx(0.9735, abs=0.01)


def test_prdc_takes_the_real_features_as_the_reference():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((400, 8))
    narrow = 0.2 * rng.standard_normal((400, 8))  # realistic but not diverse: inside the real manifold
    figures = prdc(real, narrow)
    assert figures["precision"] > 0.95 and figures["recall"] < 0.3
    swapped = prdc(narrow, real)
    assert swapped["precision"] < 0.3 and swapped["recall"] > 0.95


def test_prdc_counts_repeated_vectors_once():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((200, 4)), rng.standard_normal((200, 4))
    assert prdc(np.repeat(real, 6, axis=0), fake) == prdc(real, fake)
    assert prdc(real[:5], fake) is None  # no more distinct vectors than k


def manifest_of(export) -> dict:
    return json.loads((export / "manifest.json").read_text())


def test_exclude_copies_drops_candidates_that_copy_training_images(runs, tmp_path, monkeypatch):
    from cifar_synth.synthetic import load_synthetic

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the audit CNN's cache
    # Real data drawn like the generators' images (another seed's export), so that only copies are close; its dog
    # T holds six of the images the dog generator draws first at seed 0.
    assert run_export(runs, tmp_path / "seed1", "--seed", "1", count=PER_CLASS).exit_code == 0
    drawn = load_synthetic(tmp_path / "seed1")
    data = real_train()
    images = data.images.copy()
    for label in np.unique(drawn.labels):
        images[data.labels == label] = drawn.images[drawn.labels == label]
    assert run_export(runs, tmp_path / "plain", count=20).exit_code == 0
    plain = load_synthetic(tmp_path / "plain")
    dog = CIFAR10.label("dog")
    copies = plain.images[plain.labels == dog][:6]
    images[np.flatnonzero((data.labels == dog) & ~audit._held_out(data.labels, 0.1))[:6]] = copies
    root = tmp_path / "real"
    write_tree(root / "train", LabeledImages(images, data.labels))
    write_tree(root / "test", LabeledImages(random_images(20, 9), np.repeat(np.arange(10), 2)))
    out = tmp_path / "excluded"
    result = run_export(runs, out, "--exclude-copies", "--data", str(root), count=20)
    assert result.exit_code == 0, result.output
    assert manifest_of(out)["filter"]["copies"]["excluded"]["dog"] >= 6
    assert "Excluded" in result.output
    kept = load_synthetic(out)
    kept_dogs = kept.images[kept.labels == dog]
    assert len(kept_dogs) == 20
    assert not any((copy == kept_dogs).all(axis=(1, 2, 3)).any() for copy in copies)
    assert "the copy audit dropped" in (out / "README.md").read_text()
