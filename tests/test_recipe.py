"""Recipe options of the GAN: flips of the real images and classifier guidance, with tiny networks."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import TINY_GAN, TINY_GAN_CLI, assert_user_error, random_images
from typer.testing import CliRunner

from cifar_synth.cli import app

from cifar_synth.classes import CIFAR10
from cifar_synth.classifier import EvaluatorConfig, build_classifier
from cifar_synth.config import GANConfig
from cifar_synth.runs import RunPaths, read_record, trim_to_record
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
    build_classifier(EvaluatorConfig(widths=(4, 4, 4, 4)), len(CIFAR10)).save(path)
    return path


def train(images, run_dir, config, **options):
    options = TrainOptions(**{"epochs": 1, "init_from": "none", **options})
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
    # every class's train images but the validation slice (10% of 16 per class, rounded down: 1)
    assert shared["class_index"] is None and shared["train_images"] == 150
    dog = json.loads((runs / "dog" / "config.json").read_text())
    start = dog["sessions"][0]["started_from"]
    assert start["run"] == "shared" and start["epoch"] == 1  # relative to the runs folder: no machine path
    donor, started = (keras.models.load_model(runs / name / "generator.keras") for name in ("shared", "dog"))
    assert not np.allclose(donor.get_weights()[0], started.get_weights()[0])  # trained on from the donor

    result = CliRunner().invoke(app, [*command, "--class", "dog", "--init-from", "shared", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "started_from" not in json.loads((runs / "dog" / "config.json").read_text())["sessions"][1]


def test_the_start_copies_all_three_networks_and_fresh_optimizers(images, tmp_path):
    train(images, tmp_path / "shared", TINY_GAN)
    run_dir = tmp_path / "dog"
    gan = build_gan(TINY_GAN)
    start = _start_from(gan, tmp_path / "shared", run_dir, Reporter(quiet=True))
    donor = build_gan(TINY_GAN)
    donor.load_weights(tmp_path / "shared" / "checkpoint" / "gan_epoch_0001.weights.h5")
    for name in ("generator", "discriminator", "ema_generator"):
        for mine, theirs in zip(getattr(gan, name).get_weights(), getattr(donor, name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert int(gan.g_optimizer.iterations) == 0 and int(donor.g_optimizer.iterations) > 0
    assert start["epoch"] == 1 and not run_dir.exists()


@pytest.mark.parametrize("prepare, init_from, message", [
    (lambda runs: (runs / "donor").mkdir(parents=True), "donor",
     "has no finished epoch to start from; train it first, or name a run directory that has"),
    (lambda runs: None, "missing", "--init-from missing: no such run directory"),
    (lambda runs: train(random_images(32, 0), runs / "shared", GANConfig(**{**TINY_GAN.to_dict(), "g_width": 8})),
     "shared", "has other networks (g_width 8 there, 4 here)"),
])
def test_an_unusable_start_is_one_clear_error(real_tree, tmp_path, monkeypatch, prepare, init_from, message):
    prepare(tmp_path / "runs")
    monkeypatch.chdir(tmp_path / "runs" if (tmp_path / "runs").exists() else tmp_path)
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--init-from", init_from, "--epochs", "1",
                                      "--data", str(real_tree), "--runs", str(tmp_path / "runs"), *TINY_GAN_CLI])
    assert_user_error(result, message)
    assert not (tmp_path / "runs" / "dog" / "checkpoint" / "state.json").exists()


def test_the_shared_start_cannot_be_guided(real_tree, tmp_path):
    result = CliRunner().invoke(app, ["train", "--class", "shared", "--guidance", "0.5", "--epochs", "1",
                                      "--data", str(real_tree), "--runs", str(tmp_path / "runs"), *TINY_GAN_CLI])
    assert_user_error(result, "--guidance needs a class to guide toward")


LOUD_TINY_GAN_CLI = [option for option in TINY_GAN_CLI if option != "--quiet"]  # info lines are printed


def steps_of(run_dir: Path) -> int:
    return json.loads((run_dir / "checkpoint" / "state.json").read_text())["steps"]


def test_the_default_recipe_trains_the_shared_start_once_then_counts_steps_exactly(real_tree, tmp_path):
    runs = tmp_path / "runs"
    command = ["train", "--data", str(real_tree), "--runs", str(runs), *LOUD_TINY_GAN_CLI]
    result = CliRunner().invoke(app, [*command, "--class", "dog", "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert steps_of(runs / "shared") == 6 and steps_of(runs / "dog") == 3  # the shared start: twice --steps
    assert json.loads((runs / "dog" / "config.json").read_text())["sessions"][0]["started_from"]["run"] == "shared"
    assert "dog: 3 steps" in result.output
    shared_history = (runs / "shared" / "history.csv").read_text()

    result = CliRunner().invoke(app, [*command, "--class", "cat", "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert "starting from the shared start" in result.output and "reused (6 steps" in " ".join(result.output.split())
    assert (runs / "shared" / "history.csv").read_text() == shared_history  # not trained again

    result = CliRunner().invoke(app, [*command, "--class", "dog", "--steps", "5"])  # resumes to exactly 5
    assert result.exit_code == 0, result.output
    assert steps_of(runs / "dog") == 5 and (runs / "shared" / "history.csv").read_text() == shared_history
    result = CliRunner().invoke(app, [*command, "--class", "dog", "--steps", "5"])
    assert result.exit_code == 0 and "already trained for 5 steps" in " ".join(result.output.split())


def test_having_seen_the_test_split_survives_resume_and_init_from(real_tree, tmp_path):
    runs = tmp_path / "runs"
    command = ["train", "--data", str(real_tree), "--runs", str(runs), "--epochs", "1", *TINY_GAN_CLI]
    assert CliRunner().invoke(app, [*command, "--class", "shared", "--include-test"]).exit_code == 0
    assert CliRunner().invoke(app, [*command, "--class", "dog"]).exit_code == 0
    assert CliRunner().invoke(app, [*command, "--class", "dog", "--epochs", "2"]).exit_code == 0
    dog = json.loads((runs / "dog" / "config.json").read_text())
    assert dog["training"]["include_test"] is False and dog["saw_test_split"] is True
    assert dog["sessions"][0]["started_from"]["saw_test_split"] is True


def test_init_from_on_a_run_that_resumes_says_so_and_still_checks_the_path(real_tree, tmp_path):
    runs = tmp_path / "runs"
    command = ["train", "--class", "dog", "--data", str(real_tree), "--runs", str(runs), *LOUD_TINY_GAN_CLI]
    assert CliRunner().invoke(app, [*command, "--epochs", "1", "--init-from", "none"]).exit_code == 0
    result = CliRunner().invoke(app, [*command, "--epochs", "2", "--init-from", str(runs)])
    assert result.exit_code == 0, result.output
    assert "dog resumes its own run; --init-from applies to new runs only; use --fresh to start over from" in \
        " ".join(result.output.split())
    assert_user_error(CliRunner().invoke(app, [*command, "--epochs", "3", "--init-from", str(tmp_path / "nope")]),
                      "no such run directory")


def test_snapshots_are_kept_every_n_steps_and_at_the_budget_and_trimmed_to_the_record(real_tree, tmp_path):
    runs = tmp_path / "runs"
    command = ["train", "--class", "shared", "--data", str(real_tree), "--runs", str(runs), *TINY_GAN_CLI]
    assert CliRunner().invoke(app, [*command, "--steps", "25", "--shared-steps", "25",
                                    "--snapshot-every", "10"]).exit_code == 0
    paths = RunPaths(runs / "shared")  # 18 steps an epoch: snapshots at the epochs that cross 10 and 20, and 25
    assert paths.snapshot_steps() == [18, 25]
    assert (paths.snapshot(25)).read_bytes() == paths.generator.read_bytes()
    record = read_record(paths.root)
    trim_to_record(paths.root, replace(record, steps=18))
    assert paths.snapshot_steps() == [18]


def test_spectral_norm_bounds_every_discriminator_layer_and_survives_resume(images, tmp_path):
    from cifar_synth.gan import SpectralConv2D, build_discriminator

    config = GANConfig(**{**TINY_GAN.to_dict(), "spectral_norm": True, "loss": "hinge", "precision": "float32"})
    discriminator = build_discriminator(config)
    layers = [layer for layer in discriminator.layers if isinstance(layer, SpectralConv2D)]
    assert len(layers) == 4  # three convolutions and the head
    batch = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    for _ in range(30):  # the power iteration converges over calls, as over training steps
        discriminator(batch)
    for layer in layers:
        matrix = layer.kernel.numpy().reshape(-1, layer.filters)
        u = layer.power_vector.numpy()
        v = u @ matrix.T / np.linalg.norm(u @ matrix.T)
        estimate = float((v @ matrix @ u.T)[0, 0])
        assert estimate == pytest.approx(np.linalg.svd(matrix, compute_uv=False)[0], rel=0.05)
    train(images, tmp_path / "dog", config)
    assert train(images, tmp_path / "dog", config, epochs=2).epochs_done == 2  # the power vectors are checkpointed
    with pytest.raises(UserError, match="spectral_norm"):  # the networks' shape: a resume must not change it
        train(images, tmp_path / "dog", replace(config, spectral_norm=False), epochs=3)


def test_a_class_aware_gan_folds_exactly_into_each_class_plain_networks():
    from cifar_synth.gan import fold_networks

    config = GANConfig(**{**TINY_GAN.to_dict(), "class_aware": True, "precision": "float32"})
    conditional, plain = build_gan(config, num_classes=3), build_gan(config, class_index=2)
    rng = np.random.default_rng(0)
    for network in (conditional.generator, conditional.discriminator):  # every class weight different
        network.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.1 + (w != 0) * w
                             for w in network.get_weights()])
    latents = rng.normal(size=(4, config.latent_dim)).astype(np.float32)
    images = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    label = np.full(4, 2, np.int32)
    fold_networks(conditional.generator, plain.generator, 2)
    fold_networks(conditional.discriminator, plain.discriminator, 2)
    np.testing.assert_allclose(plain.generator(latents, training=False),
                               conditional.generator([latents, label], training=False), atol=1e-5)
    np.testing.assert_allclose(plain.discriminator(images), conditional.discriminator([images, label]), atol=1e-4)
    # another class computes something else
    assert not np.allclose(plain.discriminator(images), conditional.discriminator([images, label - 1]), atol=1e-4)
    # runs saved before the field existed were plain, whatever today's default
    assert GANConfig.from_dict({"g_width": 4}).class_aware is False


def test_class_aware_shared_start_trains_on_labels_and_classes_start_from_their_fold(real_tree, tmp_path):
    runs = tmp_path / "runs"
    command = ["train", "--data", str(real_tree), "--runs", str(runs), "--class-aware", *TINY_GAN_CLI]
    result = CliRunner().invoke(app, [*command, "--class", "dog", "--steps", "3", "--shared-steps", "20"])
    assert result.exit_code == 0, result.output
    assert json.loads((runs / "shared" / "config.json").read_text())["gan"]["class_aware"] is True
    shared = keras.models.load_model(runs / "shared" / "generator.keras")
    assert [tuple(i.shape) for i in shared.inputs][1] == (None,)  # conditional: latent and class
    dog = keras.models.load_model(runs / "dog" / "generator.keras")
    assert len(dog.inputs) == 1  # the class run's networks are today's per-class ones
    # a class run of the plain recipe cannot start from the class-aware shared start
    plain = CliRunner().invoke(app, ["train", "--data", str(real_tree), "--runs", str(runs), *TINY_GAN_CLI,
                                     "--class", "cat", "--steps", "3"])
    assert_user_error(plain, "class_aware True there, False here")
    assert_user_error(CliRunner().invoke(app, [*command, "--class", "cat", "--spectral-norm"]),
                      "--class-aware folds the class projection")
