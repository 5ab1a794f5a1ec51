"""`export --filter discriminator`: discriminator rejection sampling with each class run's own discriminator, on tiny
runs trained for one epoch (a plain discriminator for dog, a spectrally normalised one for cat)."""

import base64
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import TINY_GAN, assert_user_error, random_images, visible
from conftest import run_export as export

from cifar_synth import drs, exporter
from cifar_synth.classes import CIFAR10
from cifar_synth.config import GANConfig, TrainOptions
from cifar_synth.images import to_uint8, to_unit_range
from cifar_synth.reporter import Reporter
from cifar_synth.runs import RunPaths, read_config, read_record
from cifar_synth.synthetic import load_synthetic

COUNT = 20
BATCH = 64
DATA_INFO = {"source": "test", "kind": "array", "sha256": "0" * 64, "splits": ["train"]}


@pytest.fixture(scope="module")
def gan_runs(tmp_path_factory) -> Path:
    """dog and cat trained one epoch (4 steps) from random weights (read-only)."""
    from cifar_synth.training import train_class

    runs = tmp_path_factory.mktemp("gan-runs")
    options = TrainOptions(epochs=1, init_from="none")
    for class_name, config in (("dog", TINY_GAN), ("cat", replace(TINY_GAN, spectral_norm=True))):
        train_class(class_name, random_images(32, seed=CIFAR10.label(class_name)), DATA_INFO, config, options,
                    runs / class_name, Reporter(quiet=True))
    return runs


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_acceptance_probability_is_azadi_et_al_s_on_hand_made_logits():
    logits, logit_max, gamma, epsilon = [0.0, -1.0, 2.0, -3.0], 1.0, 0.5, 1e-6
    expected, running = [], logit_max
    for logit in logits:  # the paper's loop: raise D̃*_max first, then judge the candidate
        running = max(running, logit)
        score = logit - running - math.log(1 - math.exp(logit - running - epsilon)) - gamma
        expected.append(1 / (1 + math.exp(-score)))
    probabilities = drs.acceptance_probabilities(np.array(logits), logit_max, gamma, epsilon)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    # The new maximum: F = −log(1 − e^−ε) − γ, about 13.3, so nearly always kept.
    assert probabilities[2] == pytest.approx(1 / (1 + -math.expm1(-epsilon) * math.exp(gamma)), rel=1e-12)
    assert probabilities[1] > probabilities[3] and probabilities[0] > probabilities[1]

    burn_in = np.random.default_rng(0).normal(0, 2, 1000)
    logit_max, gamma = drs.calibrate(burn_in)
    assert logit_max == burn_in.max()
    scores = drs.drs_scores(burn_in, logit_max) - gamma
    assert np.percentile(scores, drs.PERCENTILE) == pytest.approx(0, abs=1e-9)  # γ puts the 95th percentile at 0
    assert np.mean(drs.acceptance_probabilities(burn_in, logit_max, gamma) >= 0.5) == pytest.approx(0.05, abs=0.002)


def candidates_and_logits(runs: Path, class_name: str, candidates: int, seed: int):
    """The class's first candidates in the export's batches and their logits under the run's discriminator, rebuilt
    here from its config.json and checkpoint."""
    from cifar_synth.gan import build_gan

    run = runs / class_name
    generator = keras.models.load_model(RunPaths(run).generator, compile=False)
    latents = np.random.default_rng([seed, CIFAR10.label(class_name)]).standard_normal(
        (candidates, generator.input_shape[1]), dtype=np.float32)
    gan = build_gan(replace(GANConfig.from_dict(read_config(run)["gan"]), precision="float32"))
    gan.load_weights(RunPaths(run).checkpoint / read_record(run).weights)
    images = [to_uint8(generator(latents[i:i + BATCH], training=False)) for i in range(0, candidates, BATCH)]
    logits = [np.asarray(gan.discriminator(to_unit_range(batch), training=False), np.float64).reshape(-1)
              for batch in images]
    return np.concatenate(images), np.concatenate(logits)


def test_export_keeps_exactly_count_and_the_manifest_reproduces_every_decision(gan_runs, tmp_path):
    out = tmp_path / "export"
    result = export(gan_runs, out, "--filter", "discriminator", "--batch-size", str(BATCH), "--format", "parquet",
                    "--format", "images", count=COUNT)
    assert result.exit_code == 0, result.output
    assert "filtered by discriminator rejection sampling" in " ".join(result.output.split())
    manifest = manifest_of(out)
    assert manifest["filter"]["method"] == "discriminator" and "classifier" not in manifest["filter"]
    assert (manifest["filter"]["epsilon"], manifest["filter"]["percentile"]) == (1e-6, 95.0)
    data = load_synthetic(out)
    for entry in manifest["classes"]:
        assert len(data.of_class(entry["label"])) == COUNT == entry["filter"]["accepted"]
        record = read_record(gan_runs / entry["name"])
        assert entry["filter"]["discriminator"]["checkpoint"] == f"{entry['name']}/checkpoint/{record.weights}"
        assert entry["filter"]["burn_in"] == COUNT * exporter.MAX_CANDIDATES_PER_IMAGE  # fewer than BURN_IN here
        assert entry["filter"]["candidates"] < entry["filter"]["burn_in"]  # DRS rejects, but not everything

    # From the manifest alone (plus the run's files): the same burn-in figures, decisions and images.
    entry = next(entry for entry in manifest["classes"] if entry["name"] == "dog")
    figures, candidates = entry["filter"], entry["filter"]["candidates"]
    images, logits = candidates_and_logits(gan_runs, "dog", figures["burn_in"], manifest["seed"])
    assert drs.calibrate(logits) == (figures["logit_max_burn_in"], figures["gamma"])
    probabilities = drs.acceptance_probabilities(logits[:candidates], figures["logit_max_burn_in"], figures["gamma"])
    draws = np.random.default_rng([manifest["seed"], entry["label"], 1]).random(candidates)
    mask = np.unpackbits(np.frombuffer(base64.b64decode(figures["accepted_mask"]), np.uint8), count=candidates)
    np.testing.assert_array_equal(mask.astype(bool), draws < probabilities)
    np.testing.assert_array_equal(data.of_class(entry["label"]), images[exporter.accepted_candidates(entry)])

    card = (out / "README.md").read_text()
    assert "discriminator rejection sampling (Azadi et al." in card and "real-trained classifier" not in card


def test_same_seed_same_bytes_another_seed_other_images(gan_runs, tmp_path):
    outs = {name: tmp_path / name for name in ("first", "second", "other")}
    for name, out in outs.items():
        result = export(gan_runs, out, "--class", "cat", "--filter", "discriminator", "--format", "csv",
                        "--seed", "3" if name == "other" else "2", count=COUNT)
        assert result.exit_code == 0, result.output
    first, second, other = ((out / "csv/train.csv").read_bytes() for out in outs.values())
    assert first == second and first != other
    manifests = [manifest_of(out) for out in outs.values()]
    assert [manifest.pop("name") for manifest in manifests[:2]] == ["first", "second"]
    assert manifests[0] == manifests[1]


def test_default_name_ends_in_filter_discriminator():
    options = exporter.ExportOptions(runs_dir=Path("runs"), filter_by="discriminator").validated()
    assert options.out == Path("datasets/synthetic/runs-seed0-filter-discriminator")


def test_min_confidence_with_the_discriminator_filter_is_refused(gan_runs, tmp_path):
    result = export(gan_runs, tmp_path / "export", "--filter", "discriminator", "--min-confidence", "0.9")
    assert_user_error(result, "--min-confidence needs --filter classifier (--filter discriminator uses each class's "
                              "own discriminator, no classifier)")


@pytest.mark.parametrize("kept", ["generator and record", "generator only"])
def test_a_run_without_its_discriminator_is_one_line_naming_the_class(gan_runs, runs, tmp_path, kept):
    if kept == "generator only":  # conftest's runs: generator.keras and config.json, as a hand-made run
        source, message = runs, f"airplane: --filter discriminator needs its run's discriminator, and " \
                                f"{runs / 'airplane/checkpoint/state.json'} is missing"
    else:  # as committed runs are kept (benchmarks/results/*/runs/): the checkpoint's weights left out
        source = tmp_path / "runs"
        shutil.copytree(gan_runs / "dog", source / "dog")
        weights = RunPaths(source / "dog").checkpoint / read_record(source / "dog").weights
        weights.unlink()
        message = f"dog: --filter discriminator needs its run's discriminator, and its checkpoint {weights} is missing"
    result = export(source, tmp_path / "export", "--filter", "discriminator")
    assert_user_error(result, message)
    assert not (tmp_path / "export").exists()


def test_a_selection_other_than_the_final_generator_is_refused(gan_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(gan_runs / "dog", runs / "dog")
    paths = RunPaths(runs / "dog")
    shutil.copyfile(paths.snapshot(4), paths.snapshot(2))  # stands for an earlier snapshot: only its step matters
    selection = {"criterion": "test", "record_steps": 4, "validation_images": 2, "candidates": [],
                 "chosen": {"steps": 2, "snapshot": paths.snapshot(2).name, "latent_std": 1.0}}
    paths.selection.write_text(json.dumps(selection))
    result = export(runs, tmp_path / "export", "--filter", "discriminator")
    assert_user_error(result, "dog: `cifar-synth select` chose its snapshot at step 2 with latent std 1, but its "
                              "discriminator was trained against the final generator with standard-normal latents; "
                              "export with --no-selection")
    assert visible(tmp_path) == ["runs"]
    assert export(runs, tmp_path / "export", "--filter", "discriminator", "--no-selection", count=2).exit_code == 0


def test_a_class_drs_leaves_short_is_one_line(gan_runs, tmp_path, monkeypatch):
    monkeypatch.setattr(drs, "acceptance_probabilities", lambda logits, *args: np.zeros(len(logits)))
    result = export(gan_runs, tmp_path / "export", "--class", "cat", "--filter", "discriminator", count=2)
    assert_user_error(result, "cat: discriminator rejection sampling accepted only 0 of 100 candidates (0.0%), short "
                              "of --count 2 within the cap of 50 candidates per image; lower --count, or train this "
                              "class's GAN further")
    assert visible(tmp_path) == []
