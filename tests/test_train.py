"""`cifar-synth train`: artifacts, resume, budget, failure handling, and the CLI, with tiny networks."""

import csv
import errno
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import TINY_GAN, TINY_GAN_CLI, assert_user_error
from PIL import Image
from typer.testing import CliRunner

from cifar_synth import data as data_module
from cifar_synth import saved_models
from cifar_synth import training
from cifar_synth.cli import app
from cifar_synth.config import DEFAULT_STEPS, SHARED_STEPS_PER_CLASS_STEP, GANConfig, TrainOptions
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, human_size
from cifar_synth.gan import DCGAN, build_gan
from cifar_synth.locks import hold
from cifar_synth.metrics import mean_pairwise_distance
from cifar_synth.reporter import Reporter
from cifar_synth.training import collapse_suspected, image_grid, train_class

TINY = TINY_GAN
DATA_INFO = {"source": "test", "kind": "array", "sha256": "0" * 64, "splits": ["train"]}
STEPS = 4  # steps per epoch of `tiny_images` at TINY's batch size


@pytest.fixture
def images(tiny_images):
    return tiny_images


def run(images, run_dir, config=TINY, **options):
    options = TrainOptions(**{"epochs": 1, "init_from": "none", **options})
    return train_class("dog", images, DATA_INFO, config, options, run_dir, Reporter(quiet=True))


def history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as file:
        return list(csv.DictReader(file))


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "checkpoint" / "state.json").read_text())


def restored(run_dir: Path, config=TINY):
    gan = build_gan(config)
    gan.load_weights(run_dir / "checkpoint" / record(run_dir)["weights"])
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
    assert record(run_dir)["epoch"] == 2 and record(run_dir)["images_seen"] == 2 * 32
    assert sorted(p.name for p in (run_dir / "checkpoint").iterdir()) == ["gan_epoch_0002.weights.h5", "state.json"]
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


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(images, tmp_path, monkeypatch):
    run(images, tmp_path / "dog", epochs=1)
    original = training.RunArtifacts.on_train_batch_end

    def diverge(self, batch, logs=None):
        original(self, batch, {**logs, "d_loss": float("nan")})

    monkeypatch.setattr(training.RunArtifacts, "on_train_batch_end", diverge)
    with pytest.raises(UserError, match="non-finite"):
        run(images, tmp_path / "dog", epochs=3)
    assert record(tmp_path / "dog")["epoch"] == 1
    assert len(history(tmp_path / "dog")) == 1
    assert np.isfinite(restored(tmp_path / "dog").generator.get_weights()[0]).all()


def test_time_budget_stops_after_the_step_that_spends_it(images, tmp_path):
    result = run(images, tmp_path / "dog", epochs=None, minutes=1e-6)
    assert result.epochs_done == 1
    assert history(tmp_path / "dog")[0]["images_seen"] == str(TINY.batch_size)


def test_interrupt_keeps_the_last_finished_epoch(images, tmp_path, monkeypatch):
    original = training.RunArtifacts.on_epoch_begin

    def interrupt_second_epoch(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt
        original(self, epoch, logs)

    monkeypatch.setattr(training.RunArtifacts, "on_epoch_begin", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(images, tmp_path / "dog", epochs=3)
    assert record(tmp_path / "dog")["epoch"] == 1


def test_auto_precision_is_bfloat16_only_on_a_cpu_with_native_bfloat16():
    auto = GANConfig()
    assert auto.with_resolved_precision(gpu=False, cpu_flags={"avx2", "avx512_bf16"}).precision == "mixed_bfloat16"
    assert auto.with_resolved_precision(gpu=False, cpu_flags={"amx_bf16"}).precision == "mixed_bfloat16"
    assert auto.with_resolved_precision(gpu=False, cpu_flags={"avx2", "avx512f"}).precision == "float32"
    assert auto.with_resolved_precision(gpu=True, cpu_flags={"avx512_bf16"}).precision == "float32"
    chosen = GANConfig(precision="float32")
    assert chosen.with_resolved_precision(gpu=False, cpu_flags={"avx512_bf16"}) is chosen


def test_diversity_and_grid_helpers():
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_distance(np.zeros((1, 3)))
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


def test_cli_trains_a_class_from_a_class_folder_tree(real_tree, tmp_path):
    result = CliRunner().invoke(app, ["train", "--class", "DOG", "--epochs", "1", "--data", str(real_tree),
                                      "--runs", str(tmp_path / "runs"), "--init-from", "none", *TINY_GAN_CLI])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "dog" / "generator.keras").exists() and not (tmp_path / "runs" / "shared").exists()
    config = json.loads((tmp_path / "runs" / "dog" / "config.json").read_text())
    # 16 train images, less the validation slice: 10% rounded down
    assert config["train_images"] == 15 and config["data"]["validation"]["images"] == 1


def test_cli_rejects_an_unknown_class_of_the_data_in_one_line(real_tree, tmp_path):
    result = CliRunner().invoke(app, ["train", "--class", "dragon", "--data", str(real_tree), "--runs",
                                      str(tmp_path / "r")])
    assert_user_error(result, "unknown CIFAR-10 class 'dragon'; valid names: airplane")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_cli_rejects_an_unknown_cifar10_class_before_any_download(monkeypatch, tmp_path):
    def no_download(*_):
        raise AssertionError("a --class typo must not start a download")

    monkeypatch.setattr(data_module, "fetch_official", no_download)
    monkeypatch.delenv("CIFAR_SYNTH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no datasets/cifar10/ here
    result = CliRunner().invoke(app, ["train", "--class", "dogg", "--runs", str(tmp_path / "r")])
    assert_user_error(result, "unknown CIFAR-10 class 'dogg'; valid names: airplane")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--class", "dog", "--loss", "wasserstein"], "unknown loss"),
    (["--class", "dog", "--augment", "rotate"], "unknown augmentation rotate"),
    (["--class", "dog", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--class", "dog", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--class", "dog", "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--class", "dog", "--minutes", "0"], "--minutes must be a positive number, got 0.0"),
    (["--class", "dog", "--g-lr", "nan"], "--g-lr must be a positive number, got nan"),
    (["--class", "dog", "--beta1", "1"], "--beta1 must be in [0, 1), got 1.0"),
    (["--class", "dog", "--sample-every", "0"], "--sample-every must be at least 1, got 0"),
])
def test_cli_rejects_bad_options_in_one_line(arguments, message, tmp_path):
    result = CliRunner().invoke(app, ["train", *arguments, "--data", str(tmp_path), "--runs", str(tmp_path / "r")])
    assert_user_error(result, message)
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# --- issue 10: nothing lost, one source of truth -------------------------------------------------------------------

class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no `except Exception`, no Keras clean-up)."""


def kill_at_record(monkeypatch, epoch: int):
    """Make the process 'die' just before it writes the resume record of `epoch`: every other file is written."""
    original = training.write_json_atomic

    def write(target, data):
        if Path(target).name == "state.json" and data["epoch"] == epoch:
            raise Killed
        original(target, data)

    monkeypatch.setattr(training, "write_json_atomic", write)


@pytest.mark.parametrize("killed_epoch", [1, 2])
def test_a_kill_before_the_record_loses_only_that_epoch(images, tmp_path, monkeypatch, killed_epoch):
    run_dir = tmp_path / "dog"
    if killed_epoch > 1:
        run(images, run_dir, epochs=killed_epoch - 1)
    with monkeypatch.context() as patch:
        kill_at_record(patch, killed_epoch)
        with pytest.raises(Killed):
            run(images, run_dir, epochs=killed_epoch + 1)
    assert len(history(run_dir)) == killed_epoch, "history.csv is written before the record"
    written_generator = (run_dir / "generator.keras").read_bytes()
    (run_dir / ".generator.tmpx1y2.keras").write_text("what a SIGKILL during a write leaves")

    run(images, run_dir, epochs=killed_epoch + 1)

    rows = history(run_dir)
    assert [int(row["epoch"]) for row in rows] == list(range(1, killed_epoch + 2))
    assert [int(row["images_seen"]) for row in rows] == [32 * epoch for epoch in range(1, killed_epoch + 2)]
    assert record(run_dir)["epoch"] == killed_epoch + 1
    assert (run_dir / "generator.keras").read_bytes() != written_generator
    assert int(restored(run_dir).d_optimizer.iterations) == (killed_epoch + 1) * STEPS
    assert not list(run_dir.rglob(".*.tmp*"))


def test_a_generator_of_an_unrecorded_epoch_is_replaced_by_the_recorded_one(images, tmp_path, monkeypatch):
    run_dir = tmp_path / "dog"
    run(images, run_dir, epochs=1)
    with monkeypatch.context() as patch:
        kill_at_record(patch, 2)
        with pytest.raises(Killed):
            run(images, run_dir, epochs=2)

    assert run(images, run_dir, epochs=1).epochs_done == 1  # nothing to train, but the run is trimmed to epoch 1

    latents = np.random.default_rng(0).standard_normal((4, TINY.latent_dim)).astype(np.float32)
    generator = keras.models.load_model(run_dir / "generator.keras", compile=False)
    np.testing.assert_allclose(np.asarray(generator(latents)), restored(run_dir).sample(latents), atol=1e-6)
    assert [row["epoch"] for row in history(run_dir)] == ["1"]
    assert {p.name for p in (run_dir / "samples").iterdir()} == {"epoch_001.png", "latest.png"}
    assert {p.name for p in (run_dir / "checkpoint").iterdir()} == {"gan_epoch_0001.weights.h5", "state.json"}


def test_a_resume_continues_the_random_stream_instead_of_replaying_it(images, tmp_path):
    run(images, tmp_path / "once", epochs=2)
    run(images, tmp_path / "resumed", epochs=1)
    after_first_session = record(tmp_path / "resumed")["seed_generator_state"]
    run(images, tmp_path / "resumed", epochs=2)

    # Two latent batches per step (D's and G's) and the flips of the real batch, one counter increment each.
    assert after_first_session == [0, 3 * STEPS]
    assert record(tmp_path / "resumed")["seed_generator_state"] == record(tmp_path / "once")["seed_generator_state"]


def test_every_session_is_recorded_with_what_it_changed(images, tmp_path):
    run_dir = tmp_path / "dog"
    run(images, run_dir, epochs=1)
    run(images, run_dir, config=replace(TINY, g_learning_rate=4e-4, loss="hinge", batch_size=16), epochs=2)

    config = json.loads((run_dir / "config.json").read_text())
    assert config["gan"]["g_learning_rate"] == 4e-4 and config["gan"]["loss"] == "hinge"
    first, second = config["sessions"]
    assert first["from_epoch"] == 0 and first["changed"] == {}
    assert second["from_epoch"] == 1 and second["started"] >= first["started"] == config["created"]
    assert second["changed"] == {"gan.g_learning_rate": [2e-4, 4e-4], "gan.loss": ["bce", "hinge"],
                                 "gan.batch_size": [8, 16], "training.epochs": [1, 2]}
    assert record(run_dir)["session"] == 1
    assert [int(row["images_seen"]) for row in history(run_dir)] == [32, 64]


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_run_files_follow_the_umask(images, tmp_path, umask_022):
    run(images, tmp_path / "dog", epochs=1)
    modes = {path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
             for path in tmp_path.rglob("*")}
    assert modes["dog/generator.keras"] == 0o644  # was 0600: mkstemp
    assert {mode for path, mode in modes.items() if (tmp_path / path).is_file()} == {0o644}
    assert {mode for path, mode in modes.items() if (tmp_path / path).is_dir()} == {0o755}


def test_one_default_and_one_validation_for_python_and_cli():
    assert TrainOptions().steps == DEFAULT_STEPS and TrainOptions().epochs is None
    assert TrainOptions().shared_steps == SHARED_STEPS_PER_CLASS_STEP * DEFAULT_STEPS
    assert TrainOptions(minutes=5).steps is None and TrainOptions(epochs=3).steps is None
    assert TrainOptions(steps=10).for_run(shared_start=True).steps == 10 * SHARED_STEPS_PER_CLASS_STEP
    with pytest.raises(UserError, match="--steps must be at least 1, got 0"):
        TrainOptions(steps=0)
    with pytest.raises(UserError, match="--shared-steps is the shared start's budget"):
        TrainOptions(epochs=2, shared_steps=5)
    with pytest.raises(UserError, match="--epochs must be at least 1, got 0"):
        TrainOptions(epochs=0)
    with pytest.raises(UserError, match="--seed must be a whole number, got 1.5"):
        TrainOptions(seed=1.5)
    with pytest.raises(UserError, match="--batch-size must be at least 1, got 0"):
        GANConfig(batch_size=0).validate()
    with pytest.raises(UserError, match="--ema must be in"):
        DCGAN(replace(TINY, ema_decay=1.0))


def test_a_run_directory_in_use_is_refused_naming_the_holder(real_tree, tmp_path):
    runs = tmp_path / "runs"
    with hold(runs / "dog"):
        result = CliRunner().invoke(app, ["train", "--class", "dog", "--epochs", "1", "--data", str(real_tree),
                                          "--runs", str(runs), *TINY_GAN_CLI])
    assert_user_error(result, f"run directory {runs / 'dog'} is in use by process {os.getpid()} on host")
    assert not (runs / "dog").exists()


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(images, tmp_path, monkeypatch):
    run_dir = tmp_path / "dog"
    run(images, run_dir, epochs=1)
    weights_1 = (run_dir / "checkpoint" / "gan_epoch_0001.weights.h5").read_bytes()

    def disk_full(target, data):  # the disk fills while the checkpoint's bytes are written
        with atomic_path(target, needed=len(data)) as temp:
            temp.write_bytes(data[:7])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(saved_models, "write_bytes_atomic", disk_full)
        with pytest.raises(UserError) as failure:
            run(images, run_dir, epochs=3)
    message = str(failure.value)
    assert message.startswith(f"dog: cannot write {run_dir / 'checkpoint' / 'gan_epoch_0002.weights.h5'}: No space "
                              f"left on device (it needs {human_size(len(weights_1))}, ")
    assert message.endswith(f" free there: free some space or write elsewhere); stopped. The checkpoint after epoch 1 "
                            f"is kept in {run_dir}.")
    assert record(run_dir)["epoch"] == 1
    assert (run_dir / "checkpoint" / "gan_epoch_0001.weights.h5").read_bytes() == weights_1
    assert not list(run_dir.rglob(".*tmp*")), "no partial file is left"

    assert run(images, run_dir, epochs=2).epochs_done == 2  # space freed: the run resumes
    assert [row["epoch"] for row in history(run_dir)] == ["1", "2"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_directory_is_one_line_naming_the_path(images, tmp_path):
    run_dir = tmp_path / "dog"
    run(images, run_dir, epochs=1)
    for folder in (run_dir, run_dir / "samples", run_dir / "checkpoint"):
        folder.chmod(0o555)
    try:
        with pytest.raises(UserError, match=f"dog: cannot write {run_dir}/.*: Permission denied; stopped. "
                                            "The checkpoint after epoch 1 is kept"):
            run(images, run_dir, epochs=2)
    finally:
        for folder in (run_dir, run_dir / "samples", run_dir / "checkpoint"):
            folder.chmod(0o755)
    assert record(run_dir)["epoch"] == 1
