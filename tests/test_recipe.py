"""Recipe options of the GAN: flips of the real images and classifier guidance, with tiny networks."""

import csv

import keras
import numpy as np
import pytest

from cifar_synth.classifier import EvaluatorConfig, build_classifier
from cifar_synth.config import GANConfig
from cifar_synth.errors import UserError
from cifar_synth.gan import build_gan
from cifar_synth.reporter import Reporter
from cifar_synth.training import TrainOptions, train_class

TINY = GANConfig(latent_dim=8, g_width=4, d_width=4, batch_size=8)
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
    guided = GANConfig(**{**TINY.to_dict(), "flip": True, "guidance": 0.5})
    train(images, tmp_path / "dog", guided, guide=str(guide_path))
    with (tmp_path / "dog" / "history.csv").open() as file:
        assert len(list(csv.DictReader(file))) == 1
    # The guide is not part of the checkpoint: the same run resumes without guidance.
    result = train(images, tmp_path / "dog", TINY, epochs=2)
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
    gan = build_gan(GANConfig(**{**TINY.to_dict(), "guidance": 100.0}), guide=guide, class_index=5)
    latents = np.random.default_rng(0).standard_normal((64, TINY.latent_dim)).astype(np.float32)

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
        build_gan(GANConfig(**{**TINY.to_dict(), "guidance": 0.5}))


def test_an_unusable_guide_is_one_clear_error(images, tmp_path):
    (tmp_path / "guide.keras").write_text("not a model")
    with pytest.raises(UserError, match="cannot load classifier"):
        train(images, tmp_path / "dog", GANConfig(**{**TINY.to_dict(), "guidance": 0.5}),
              guide=str(tmp_path / "guide.keras"))


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_a_time_budget_stops_after_the_step_that_spends_it(images, tmp_path, clock):
    result = train(images, tmp_path / "dog", TINY, epochs=None, minutes=1e-6, budget_clock=clock)
    with (tmp_path / "dog" / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert result.epochs_done == 1 and [row["images_seen"] for row in rows] == [str(TINY.batch_size)]
