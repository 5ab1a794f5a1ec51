"""Recipe options of the GAN: flips of the real images and classifier guidance, with tiny networks."""

import csv

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


def test_guidance_pulls_the_generator_toward_the_guide_class(guide_path):
    from cifar_synth.classifier import load_classifier

    guide = load_classifier(guide_path)
    gan = build_gan(GANConfig(**{**TINY.to_dict(), "guidance": 1.0}), guide=guide, class_index=5)
    real = np.zeros((8, 32, 32, 3), np.float32)
    losses = [float(gan.train_step(real)["guide_loss"]) for _ in range(20)]
    assert losses[-1] < losses[0]


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
