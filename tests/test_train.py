"""`cifar-synth train`: artifacts, resume, budget, failure handling, and the CLI, with tiny networks."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.cli import app
from cifar_synth.errors import UserError
from cifar_synth.config import GANConfig
from cifar_synth.gan import build_gan
from cifar_synth.training import TrainOptions, collapse_suspected, image_grid, mean_pairwise_distance, train_class

TINY = GANConfig(latent_dim=8, g_width=4, d_width=4, batch_size=8)
TINY_CLI = ["--latent-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--quiet"]
DATA_INFO = {"source": "test", "kind": "array", "sha256": "0" * 64, "splits": ["train"]}


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)


def run(images, run_dir, config=TINY, **options):
    options = TrainOptions(**{"epochs": 1, "quiet": True, **options})
    return train_class("dog", images, DATA_INFO, config, options, run_dir, Console(quiet=True))


def history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as file:
        return list(csv.DictReader(file))


def restored(run_dir: Path, config=TINY):
    gan = build_gan(config)
    gan.load_weights(run_dir / "checkpoint" / "gan.weights.h5")
    return gan


def test_one_run_writes_every_artifact(images, tmp_path):
    run_dir = tmp_path / "dog"
    result = run(images, run_dir, epochs=2, tensorboard=True)

    assert result.epochs_done == 2
    generator = keras.models.load_model(run_dir / "generator.keras", compile=False)
    output = np.asarray(generator(np.zeros((3, 8), np.float32)))
    assert output.shape == (3, 32, 32, 3) and np.abs(output).max() <= 1.0
    assert {p.name for p in (run_dir / "samples").iterdir()} == {"epoch_001.png", "epoch_002.png", "latest.png"}
    assert Image.open(run_dir / "samples" / "latest.png").size == (320, 320)
    rows = history(run_dir)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "d_loss", "g_loss", "d_real", "d_fake", "seconds", "images_seen",
                            "diversity", "diversity_ratio"}
    assert (run_dir / "losses.png").stat().st_size > 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["gan"]["g_width"] == 4 and config["training"]["seed"] == 0
    assert config["gan"]["precision"] in ("float32", "mixed_bfloat16")  # "auto" is recorded as what ran
    assert config["data"]["sha256"] == "0" * 64 and config["versions"]["tensorflow"]
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["epoch"] == 2
    assert any((run_dir / "tb").rglob("events.out.tfevents.*"))
    assert not list(run_dir.rglob("*.tmp*")), "no temporary files are left behind"


def test_rerun_resumes_with_optimizer_state(images, tmp_path):
    run_dir = tmp_path / "dog"
    steps_per_epoch = len(images) // TINY.batch_size
    run(images, run_dir, epochs=1)
    gan = restored(run_dir)
    assert int(gan.d_optimizer.iterations) == steps_per_epoch
    assert int(gan.g_optimizer.iterations) == steps_per_epoch
    assert any(np.abs(np.asarray(v)).sum() > 0 for v in gan.g_optimizer.variables[2:])

    result = run(images, run_dir, epochs=3)

    assert result.epochs_done == 3
    assert [row["epoch"] for row in history(run_dir)] == ["1", "2", "3"]
    assert int(restored(run_dir).d_optimizer.iterations) == 3 * steps_per_epoch


def test_rerun_after_last_epoch_does_nothing(images, tmp_path):
    run(images, tmp_path / "dog", epochs=1)
    assert run(images, tmp_path / "dog", epochs=1).epochs_done == 1
    assert len(history(tmp_path / "dog")) == 1


def test_resume_with_other_architecture_fails_and_fresh_starts_over(images, tmp_path):
    run(images, tmp_path / "dog", epochs=1)
    with pytest.raises(UserError, match="g_width 4 → 8"):
        run(images, tmp_path / "dog", config=replace(TINY, g_width=8), epochs=2)
    run(images, tmp_path / "dog", config=replace(TINY, g_width=8), epochs=1, fresh=True)
    assert json.loads((tmp_path / "dog" / "config.json").read_text())["gan"]["g_width"] == 8


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(images, tmp_path):
    run(images, tmp_path / "dog", epochs=1)
    broken = replace(TINY, d_learning_rate=float("nan"), g_learning_rate=float("nan"))
    with pytest.raises(UserError, match="non-finite"):
        run(images, tmp_path / "dog", config=broken, epochs=3)
    assert json.loads((tmp_path / "dog" / "checkpoint" / "state.json").read_text())["epoch"] == 1
    assert len(history(tmp_path / "dog")) == 1
    assert np.isfinite(restored(tmp_path / "dog").generator.get_weights()[0]).all()


def test_time_budget_stops_after_the_step_that_spends_it(images, tmp_path):
    result = run(images, tmp_path / "dog", epochs=None, minutes=1e-6)
    assert result.epochs_done == 1
    assert history(tmp_path / "dog")[0]["images_seen"] == str(TINY.batch_size)


def test_interrupt_keeps_the_last_finished_epoch(images, tmp_path, monkeypatch):
    from cifar_synth import training

    original = training.RunArtifacts.on_epoch_begin

    def interrupt_second_epoch(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt
        original(self, epoch, logs)

    monkeypatch.setattr(training.RunArtifacts, "on_epoch_begin", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(images, tmp_path / "dog", epochs=3)
    assert json.loads((tmp_path / "dog" / "checkpoint" / "state.json").read_text())["epoch"] == 1


def test_auto_precision_is_bfloat16_only_on_a_cpu_with_native_bfloat16():
    auto = GANConfig()
    assert auto.with_resolved_precision(gpu=False, cpu_flags={"avx2", "avx512_bf16"}).precision == "mixed_bfloat16"
    assert auto.with_resolved_precision(gpu=False, cpu_flags={"amx_bf16"}).precision == "mixed_bfloat16"
    assert auto.with_resolved_precision(gpu=False, cpu_flags={"avx2", "avx512f"}).precision == "float32"
    assert auto.with_resolved_precision(gpu=True, cpu_flags={"avx512_bf16"}).precision == "float32"
    chosen = GANConfig(precision="float32")
    assert chosen.with_resolved_precision(gpu=False, cpu_flags={"avx512_bf16"}) is chosen


def test_diversity_and_grid_helpers():
    same = np.zeros((5, 32, 32, 3), np.float32)
    assert mean_pairwise_distance(same) == 0.0
    two = np.stack([np.zeros((32, 32, 3)), np.ones((32, 32, 3))])
    assert mean_pairwise_distance(two) == pytest.approx(np.sqrt(32 * 32 * 3))
    tiles = np.arange(100, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    grid = np.asarray(image_grid(tiles))
    assert grid[0, 32, 0] == 1 and grid[32, 0, 0] == 10  # row by row


def test_collapse_warning_fires_on_a_fall_or_a_run_that_never_diversifies():
    warming_up = [0.11, 0.15, 0.13, 0.40]  # a healthy run's first epochs (airplane, 6-minute protocol)
    assert not any(collapse_suspected(warming_up[:n]) for n in range(1, len(warming_up) + 1))
    assert collapse_suspected([0.11, 0.71, 0.91, 0.35])
    assert not collapse_suspected([0.11, 0.71, 0.91, 0.88])
    assert collapse_suspected([0.10] * 13) and not collapse_suspected([0.10] * 12)


def write_tree(root: Path, per_class: int = 16):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for name in CLASS_NAMES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_cli_trains_a_class_from_a_class_folder_tree(tmp_path):
    write_tree(tmp_path / "data")
    result = CliRunner().invoke(app, ["train", "--class", "DOG", "--epochs", "1", "--data", str(tmp_path / "data"),
                                      "--runs", str(tmp_path / "runs"), *TINY_CLI])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "dog" / "generator.keras").exists()
    assert json.loads((tmp_path / "runs" / "dog" / "config.json").read_text())["train_images"] == 16


@pytest.mark.parametrize("arguments, message", [
    (["--class", "dragon"], "valid names: airplane"),
    (["--class", "dog", "--loss", "wasserstein"], "unknown loss"),
    (["--class", "dog", "--augment", "rotate"], "unknown augmentation rotate"),
    (["--class", "dog", "--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_cli_rejects_bad_options_without_traceback(arguments, message, tmp_path):
    result = CliRunner().invoke(app, ["train", *arguments, "--data", str(tmp_path), "--runs", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
