"""`cifar-synth select`: snapshots and latent spreads chosen on the validation slice, never the test split; export
follows the choice."""

import json

import numpy as np
import pytest
from conftest import TINY_GAN_CLI, assert_user_error, write_real_tree
from typer.testing import CliRunner

from cifar_synth.cli import app
from cifar_synth.data import RealData
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
