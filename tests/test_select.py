"""`cifar-synth select`: snapshots and latent spreads chosen on the validation slice, never the test split; export
follows the choice."""

import json

import numpy as np
import pytest
from conftest import ODD, ODD_COLOURS, TINY_GAN_CLI, assert_user_error, write_odd_tree, write_real_tree
from typer.testing import CliRunner

from cifar_synth import validation_search
from cifar_synth.classifier import EvaluatorConfig
from cifar_synth.cli import app
from cifar_synth.data import RealData
from cifar_synth.filtering import SELECTION_JUDGE
from cifar_synth.honesty import unknown_provenance
from cifar_synth.runs import RunPaths
from cifar_synth.synthetic import load_synthetic


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """24 images per class and split: a validation slice of 2 per class, the fewest a distance takes."""
    return write_real_tree(tmp_path_factory.mktemp("tree") / "cifar10", per_class=24)


@pytest.fixture(scope="module")
def trained_runs(tree, tmp_path_factory):
    real_tree = tree
    runs = tmp_path_factory.mktemp("select") / "runs"
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--class", "cat", "--steps", "3",
                                      "--snapshot-every", "1", "--data", str(real_tree), "--runs", str(runs),
                                      *TINY_GAN_CLI])
    assert result.exit_code == 0, result.output
    return runs


@pytest.mark.slow
def test_select_reads_only_the_training_split_and_export_follows_its_choice(trained_runs, tree, monkeypatch,
                                                                            tmp_path):
    real_tree = tree
    load = RealData.load

    def training_split_only(self, split, classes=None):
        assert split == "train", "selection read the test split"
        return load(self, split, classes)

    monkeypatch.setattr(RealData, "load", training_split_only)
    result = CliRunner().invoke(app, ["select", "--runs", str(trained_runs), "--data", str(real_tree), "--samples",
                                      "20", "--latent-std", "1", "--latent-std", "1.5", "--budget", "quick"])
    assert result.exit_code == 0, result.output
    selection = json.loads(RunPaths(trained_runs / "dog").selection.read_text())
    # 2 steps an epoch (22 training images, batch 8): snapshots at the epoch ends, steps 2 and 3, × two spreads
    assert len(selection["candidates"]) == 2 * 2
    assert selection["chosen"] == min(selection["candidates"], key=lambda c: c["frechet_distance"])
    assert selection["validation_images"] == 2 and selection["test_split_read"] is False
    monkeypatch.setattr(RealData, "load", load)

    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", "--runs", str(trained_runs), "--count", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    dog = next(entry for entry in manifest["classes"] if entry["name"] == "dog")
    assert dog["generator"]["path"] == f"dog/snapshots/{selection['chosen']['snapshot']}"
    assert dog["generator"]["latent_std"] == selection["chosen"]["latent_std"]
    assert dog["generator"]["selected"]["steps"] == selection["chosen"]["steps"]

    plain = tmp_path / "plain"
    assert CliRunner().invoke(app, ["export", "--runs", str(trained_runs), "--count", "4", "--out", str(plain),
                                    "--no-selection"]).exit_code == 0
    dog = next(entry for entry in json.loads((plain / "manifest.json").read_text())["classes"] if entry["name"] == "dog")
    assert dog["generator"]["path"] == "dog/generator.keras" and dog["generator"]["latent_std"] == 1.0
    if selection["chosen"]["steps"] != 3 or selection["chosen"]["latent_std"] != 1.0:
        assert not np.array_equal(load_synthetic(out).images, load_synthetic(plain).images)


def test_select_refuses_runs_without_a_validation_slice(real_tree, tmp_path):
    runs = tmp_path / "runs"
    assert CliRunner().invoke(app, ["train", "--class", "dog", "--epochs", "1", "--init-from", "none",
                                    "--validation-fraction", "0", "--data", str(real_tree), "--runs", str(runs),
                                    *TINY_GAN_CLI]).exit_code == 0
    result = CliRunner().invoke(app, ["select", "--runs", str(runs), "--data", str(real_tree)])
    assert_user_error(result, "dog was trained without a validation slice")


def save_colour_generator(path, colour, latent_dim: int = 8) -> None:
    """A Dense generator whose images are `colour` plus a little latent-driven noise, as a trained class's would be
    recognisable: its samples are what the odd tree's classes look like."""
    import keras

    generator = keras.Sequential([keras.Input((latent_dim,)), keras.layers.Dense(32 * 32 * 3, activation="tanh"),
                                  keras.layers.Reshape((32, 32, 3))])
    kernel = np.random.default_rng(0).normal(0, 0.02, (latent_dim, 32 * 32 * 3))
    bias = np.tile(np.arctanh(np.clip(np.array(colour) / 127.5 - 1, -0.95, 0.95)), 32 * 32)
    generator.layers[0].set_weights([kernel, bias])
    generator.save(path)


@pytest.mark.slow
def test_select_searches_spreads_and_filter_thresholds_on_the_validation_slice_and_export_follows(monkeypatch,
                                                                                                 tmp_path):
    tree = write_odd_tree(tmp_path / "critters", per_class=24)  # a validation slice of 2 per class
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--class", "all", "--steps", "2", "--snapshot-every", "1",
                                      "--init-from", "none", "--data", str(tree), "--runs", str(runs), *TINY_GAN_CLI])
    assert result.exit_code == 0, result.output
    for index, name in enumerate(ODD):  # generators the judge can recognise, so that every threshold is feasible
        paths = RunPaths(runs / name)
        for step in paths.snapshot_steps():
            save_colour_generator(paths.snapshot(step), ODD_COLOURS[index])
    # On 66 images an epoch is one step: 40 of them make a judge that tells the colours apart, and the scoring CNNs
    # train as many epochs on their 10 images per class.
    monkeypatch.setitem(EvaluatorConfig.BUDGETS, "quick", {**EvaluatorConfig.BUDGETS["quick"], "epochs": 40})
    monkeypatch.setattr(validation_search, "REFERENCE_IMAGES_PER_CLASS", 10)
    load = RealData.load

    def training_split_only(self, split, classes=None):
        assert split == "train", "selection read the test split"
        return load(self, split, classes)

    monkeypatch.setattr(RealData, "load", training_split_only)
    result = CliRunner().invoke(app, ["select", "--runs", str(runs), "--data", str(tree), "--samples", "8",
                                      "--latent-std", "1", "--latent-std", "2", "--spread-by", "accuracy",
                                      "--min-confidence", "0", "--min-confidence", "0.5", "--filter-count", "10",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(RealData, "load", load)
    spreads = json.loads((runs / ".cifar-synth" / "selection" / "spreads.json").read_text())
    assert spreads["test_split_read"] is False and spreads["latent_stds"] == [1.0, 2.0]
    assert [run["name"] for run in spreads["single"]] == ["latent std 1", "latent std 2"]
    for name in ODD:
        selection = json.loads(RunPaths(runs / name).selection.read_text())
        assert selection["chosen"]["latent_std"] == spreads["chosen"][name]
        assert selection["chosen"] in selection["candidates"]
        assert selection["latent_std_choice"]["search"].endswith("spreads.json")
    search = json.loads((runs / ".cifar-synth" / "selection" / "thresholds.json").read_text())
    assert search["test_split_read"] is False and search["thresholds"] == [0.0, 0.5]
    assert [run["name"] for run in search["single"]] == ["threshold 0", "threshold 0.5"]
    best_single = max(run["accuracy"] for run in search["single"])
    if search["chosen_run"] == "per-class mix":
        assert search["mixed"]["accuracy"] >= best_single
    else:
        assert next(run["accuracy"] for run in search["single"] if run["name"] == search["chosen_run"]) == best_single
    chosen = {}
    for name in ODD:
        choice = json.loads(RunPaths(runs / name).selection.read_text())["filter"]
        assert choice["min_confidence"] == search["chosen"][name] and choice["search"].endswith("thresholds.json")
        chosen[name] = choice["min_confidence"]

    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", "--runs", str(runs), "--count", "6", "--out", str(out),
                                      "--filter", "selected"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filter"]["min_confidence_per_class"] == chosen
    assert manifest["filter"]["classifier"]["path"].startswith(".cifar-synth/selection/judge-")
    assert manifest["filter"]["classifier"]["trained_on"] == SELECTION_JUDGE
    assert [entry["filter"]["min_confidence"] for entry in manifest["classes"]] == [chosen[name] for name in ODD]
    assert unknown_provenance(manifest) == []
    assert "chosen by `cifar-synth select` on the validation slice" in (out / "README.md").read_text()
    assert_user_error(CliRunner().invoke(app, ["export", "--runs", str(runs), "--out", str(tmp_path / "x"),
                                               "--filter", "selected", "--min-confidence", "0.7"]),
                      "--min-confidence needs --filter classifier (--filter selected uses the judge and thresholds")


def test_export_filter_selected_needs_a_threshold_search(trained_runs, tmp_path):
    assert_user_error(CliRunner().invoke(app, ["export", "--runs", str(trained_runs), "--out", str(tmp_path / "x"),
                                               "--filter", "selected"]),
                      "has no filter threshold chosen by `cifar-synth select`")


def test_min_confidence_search_needs_every_class(trained_runs, tree):
    assert_user_error(CliRunner().invoke(app, ["select", "--runs", str(trained_runs), "--data", str(tree),
                                               "--class", "dog", "--min-confidence", "0.5", "--quiet"]),
                      "--min-confidence searches every class's threshold at once")


def test_spread_by_accuracy_needs_every_class(trained_runs, tree):
    assert_user_error(CliRunner().invoke(app, ["select", "--runs", str(trained_runs), "--data", str(tree),
                                               "--class", "dog", "--spread-by", "accuracy", "--quiet"]),
                      "--spread-by accuracy scores all classes at once")
    assert_user_error(CliRunner().invoke(app, ["select", "--runs", str(trained_runs), "--data", str(tree),
                                               "--spread-by", "likeness", "--quiet"]),
                      "--spread-by must be one of frechet, accuracy")


def test_min_confidence_without_a_search_is_refused(trained_runs, tree):
    assert_user_error(CliRunner().invoke(app, ["select", "--runs", str(trained_runs), "--data", str(tree),
                                               "--no-filter-search", "--min-confidence", "0.5", "--quiet"]),
                      "--min-confidence gives the thresholds to search; leave it out with --no-filter-search")
