"""Recipe options of the GAN: flips of the real images and classifier guidance, with tiny networks."""

import csv
import json

import keras
import numpy as np
import pytest
from conftest import TINY_GAN, TINY_GAN_CLI, assert_user_error, random_images
from typer.testing import CliRunner

from cifar_synth.cli import app

from cifar_synth.classifier import EvaluatorConfig, build_classifier
from cifar_synth.config import GANConfig
from cifar_synth.errors import UserError
from cifar_synth.gan import build_gan
from cifar_synth.reporter import Reporter
from cifar_synth.training import TrainOptions, _start_from, train_class

DATA_INFO = {"source": "test", "kind": "array", "sha256": "0" * 64, "splits": ["train"]}


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def guide_path(tmp_path):
    path = tmp_path / "guide.keras"
    build_classifier(EvaluatorConfig(widths=(4, 4, 4, 4))).save(path)
    return path


def train(images, run_dir, config, **options):
    options = TrainOptions(**{"epochs": 1, **options})
    return train_class("dog", images, DATA_INFO, config, options, run_dir, Reporter(quiet=True))


def test_guided_flipped_run_trains_logs_and_resumes_without_guidance(images, guide_path, tmp_path):
    guided = GANConfig(**{**TINY_GAN.to_dict(), "flip": True, "guidance": 0.5})
    train(images, tmp_path / "dog", guided, guide=str(guide_path))
    with (tmp_path / "dog" / "history.csv").open() as file:
        assert len(list(csv.DictReader(file))) == 1
    # The guide is not part of the checkpoint: the same run resumes without guidance.
    result = train(images, tmp_path / "dog", TINY_GAN, epochs=2)
    assert result.epochs_done == 2


def test_guidance_pulls_the_generator_toward_the_guide_class():
    # A guide that believes in class 5 the more, the brighter the image: a clear direction for G to follow.
    pixels = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(10)
    guide = keras.Model(pixels, dense(keras.layers.GlobalAveragePooling2D()(pixels)))
    kernel = np.zeros((3, 10), np.float32)
    kernel[:, 5] = 0.02
    bias = np.zeros(10, np.float32)
    bias[5] = -0.02 * 3 * 127.5  # mid-grey images: no preference
    dense.set_weights([kernel, bias])
    gan = build_gan(GANConfig(**{**TINY_GAN.to_dict(), "guidance": 100.0}), guide=guide, class_index=5)
    latents = np.random.default_rng(0).standard_normal((64, TINY_GAN.latent_dim)).astype(np.float32)

    def guide_belief():
        pixels = (gan.generator(latents, training=True) + 1.0) * 127.5
        return float(np.mean(keras.ops.softmax(guide(pixels, training=False))[:, 5]))

    before = guide_belief()
    real = np.zeros((8, 32, 32, 3), np.float32)
    for _ in range(30):
        gan.train_step(real)
    assert guide_belief() > before + 0.02


def test_guidance_without_a_classifier_is_refused():
    with pytest.raises(ValueError, match="guide classifier"):
        build_gan(GANConfig(**{**TINY_GAN.to_dict(), "guidance": 0.5}))


def test_an_unusable_guide_is_one_clear_error(images, tmp_path):
    (tmp_path / "guide.keras").write_text("not a model")
    with pytest.raises(UserError, match="cannot load classifier"):
        train(images, tmp_path / "dog", GANConfig(**{**TINY_GAN.to_dict(), "guidance": 0.5}),
              guide=str(tmp_path / "guide.keras"))


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_a_time_budget_stops_after_the_step_that_spends_it(images, tmp_path, clock):
    result = train(images, tmp_path / "dog", TINY_GAN, epochs=None, minutes=1e-6, budget_clock=clock)
    with (tmp_path / "dog" / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert result.epochs_done == 1 and [row["images_seen"] for row in rows] == [str(TINY_GAN.batch_size)]


def test_class_runs_start_from_the_shared_start_and_a_resume_ignores_it(real_tree, tmp_path):
    runs = tmp_path / "runs"
    command = ["train", "--epochs", "1", "--data", str(real_tree), "--runs", str(runs), *TINY_GAN_CLI]
    result = CliRunner().invoke(app, [*command, "--class", "dog", "--class", "shared", "--init-from", "shared"])
    assert result.exit_code == 0, result.output
    shared = json.loads((runs / "shared" / "config.json").read_text())
    assert shared["class_index"] is None and shared["train_images"] == 160  # every class's train images
    dog = json.loads((runs / "dog" / "config.json").read_text())
    start = dog["sessions"][0]["started_from"]
    assert start["run"] == str((runs / "shared").absolute()) and start["epoch"] == 1
    donor, started = (keras.models.load_model(runs / name / "generator.keras") for name in ("shared", "dog"))
    assert not np.allclose(donor.get_weights()[0], started.get_weights()[0])  # trained on from the donor

    result = CliRunner().invoke(app, [*command, "--class", "dog", "--init-from", "shared", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "started_from" not in json.loads((runs / "dog" / "config.json").read_text())["sessions"][1]


def test_the_start_copies_all_three_networks_and_fresh_optimizers(images, tmp_path):
    train(images, tmp_path / "shared", TINY_GAN)
    run_dir = tmp_path / "dog"
    gan = build_gan(TINY_GAN)
    start = _start_from(gan, tmp_path / "shared", Reporter(quiet=True))
    donor = build_gan(TINY_GAN)
    donor.load_weights(tmp_path / "shared" / "checkpoint" / "gan_epoch_0001.weights.h5")
    for name in ("generator", "discriminator", "ema_generator"):
        for mine, theirs in zip(getattr(gan, name).get_weights(), getattr(donor, name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert int(gan.g_optimizer.iterations) == 0 and int(donor.g_optimizer.iterations) > 0
    assert start["epoch"] == 1 and not run_dir.exists()


@pytest.mark.parametrize("prepare, message", [
    (lambda runs: None, "has no finished epoch to start from; train it first: cifar-synth train --class shared"),
    (lambda runs: train(random_images(32, 0), runs / "shared", GANConfig(**{**TINY_GAN.to_dict(), "g_width": 8})),
     "has other networks (g_width 8 there, 4 here)"),
])
def test_an_unusable_start_is_one_clear_error(real_tree, tmp_path, prepare, message):
    prepare(tmp_path / "runs")
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--init-from", "shared", "--epochs", "1",
                                      "--data", str(real_tree), "--runs", str(tmp_path / "runs"), *TINY_GAN_CLI])
    assert_user_error(result, message)
    assert not (tmp_path / "runs" / "dog" / "checkpoint" / "state.json").exists()


def test_the_shared_start_cannot_be_guided(real_tree, tmp_path):
    result = CliRunner().invoke(app, ["train", "--class", "shared", "--guidance", "0.5", "--epochs", "1",
                                      "--data", str(real_tree), "--runs", str(tmp_path / "runs"), *TINY_GAN_CLI])
    assert_user_error(result, "--guidance needs a class to guide toward")
