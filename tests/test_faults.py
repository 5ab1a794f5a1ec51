"""Issue 38: a full disk or a truncated file is one line naming the file and what to do, never a traceback or a
crash; the cached classifier of the export filter is tested in test_export.py.

A full disk is a small tmpfs where the test can mount one (root on Linux), else ENOSPC injected where the bytes are
written."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_GAN_CLI, assert_user_error, leftovers, python_env, run_export, visible
from typer.testing import CliRunner

from cifar_synth import baseline_cache, files
from cifar_synth.cli import app
from cifar_synth.errors import UserError
from cifar_synth.runs import RunPaths

# --- a full disk -----------------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A mount point for a tmpfs of the size the test asks for (`mount(size)` → its path); skipped where the test
    cannot mount one."""
    mounted = []

    def mount(size: str) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                                                str(disk)], capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of `disk`'s free space; deleting it is freeing space."""
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - leave))
    return filler


def test_train_on_a_full_disk_exits_1_in_one_line_and_resumes_once_there_is_room(real_tree, small_disk):
    """The first checkpoint (about 6 MB) does not fit in the 3 MB left: HDF5 used to fail against the disk, then
    again while finalising the half-written file at exit, and the process died of a segmentation fault."""
    disk = small_disk("24m")
    filler = fill(disk, 3_000_000)
    runs = disk / "runs"
    command = [sys.executable, "-m", "cifar_synth", "train", "--class", "dog", "--data", str(real_tree), "--runs",
               str(runs), "--epochs", "2", "--init-from", "none", "--latent-dim", "32", "--batch-size", "8",
               "--quiet"]
    full = subprocess.run(command, env=python_env(), capture_output=True, text=True, timeout=300)
    stderr = " ".join(full.stderr.split())
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr and "Segmentation fault" not in full.stderr
    assert "RuntimeError" not in full.stderr  # h5py's "Can't decrement id ref count" while finalising
    weights = runs / "dog/checkpoint/gan_epoch_0001.weights.h5"
    assert f"Error: dog: cannot write {weights}: No space left on device (it needs " in stderr
    assert " free there: free some space or write elsewhere); stopped. The checkpoint after epoch 0 is kept" in stderr
    assert stderr.count("Error:") == 1
    assert not RunPaths(runs / "dog").record.exists()
    assert not list(runs.rglob(".*.tmp*")), "the half-written checkpoint is removed"

    filler.unlink()  # room again: the same command resumes and records every epoch once
    again = subprocess.run(command, env=python_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    history = RunPaths(runs / "dog").history.read_text().splitlines()
    assert [line.split(",")[0] for line in history] == ["epoch", "1", "2"]


def test_a_failed_write_says_what_it_needed_and_what_is_free(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "free_bytes", lambda path: 1234)
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(UserError) as failure:
        with files.atomic_path(target) as temp:
            temp.write_bytes(b"x" * 10)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(failure.value) == (f"cannot write {target}: No space left on device (it needs more than the 10 bytes "
                                  "written when the disk filled, 1.2 kB free there: free some space or write "
                                  "elsewhere)")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]

    with pytest.raises(UserError) as failure, files.atomic_path(target, needed=2_500_000):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))
    assert str(failure.value) == f"cannot write {target}: Permission denied"  # not a full disk: no figures


def test_weights_written_in_memory_load_like_keras_own(tmp_path):
    import keras

    from cifar_synth.saved_models import save_weights

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    save_weights(model, tmp_path / "mine.weights.h5")
    model.save_weights(tmp_path / "keras.weights.h5")
    for name in ("mine", "keras"):
        other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        other.load_weights(tmp_path / f"{name}.weights.h5")
        for saved, loaded in zip(model.get_weights(), other.get_weights()):
            assert (saved == loaded).all()


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(runs, small_disk):
    disk = small_disk("256k")
    out = disk / "export"
    result = run_export(runs, out, "--class", "dog", "--format", "images", "--format", "csv", count=400)
    assert_user_error(result, f"writing {out} failed: No space left on device (")
    assert "free there: free some space or write elsewhere)" in " ".join(result.output.split())
    assert visible(disk) == [] and leftovers(disk) == []


def test_data_fetch_to_a_full_disk_names_the_file_not_the_network(tmp_path, small_disk, monkeypatch):
    from cifar_synth.data import fetch_official

    source = tmp_path / "archive.tar.gz"
    source.write_bytes(os.urandom(600_000))
    monkeypatch.setenv("CIFAR_SYNTH_URL", source.as_uri())
    monkeypatch.setenv("CIFAR_SYNTH_SHA256", "0" * 64)
    disk = small_disk("256k")
    with pytest.raises(UserError) as failure:
        fetch_official(disk / "cifar10")
    message = str(failure.value)
    assert message.startswith(f"cannot write {disk / 'cifar10'}/") and "No space left on device (it needs more " \
        "than the" in message and "could not download" not in message
    assert list((disk / "cifar10").iterdir()) == []


class _FullDiskModel:
    def save(self, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_cache_that_cannot_be_written_is_a_warning_and_the_evaluation_goes_on(tmp_path):
    from cifar_synth.evaluator import _Training

    entry = tmp_path / "cache" / "0123abcd"
    warnings = []
    assert not baseline_cache.store_entry(entry, {"k": 1}, _FullDiskModel(), {"accuracy": 0.5}, warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith(f"the baseline is not cached: cannot write {entry}/")
    assert "The evaluation goes on" in warnings[0] and not entry.exists()
    with pytest.raises(UserError, match="the baseline cache: cannot write"):  # without a warning channel
        baseline_cache.store_entry(entry, {"k": 1}, _FullDiskModel(), {})

    # The evaluator keeps the model and result it trained, and records no cache entry for them.
    training = SimpleNamespace(_cache_entry=lambda fit: ({"k": 1}, entry), reporter=SimpleNamespace(
        warn=warnings.append))
    result = SimpleNamespace(to_dict=dict, cache_entry=None)
    model = _FullDiskModel()
    assert _Training.keep(training, SimpleNamespace(train_set="real"), model, result) == (model, result)
    assert result.cache_entry is None and len(warnings) == 2


# --- a truncated or corrupt file -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_runs(real_tree, tmp_path_factory) -> Path:
    """dog trained for one tiny epoch with a snapshot (read-only: tests corrupt copies)."""
    runs = tmp_path_factory.mktemp("trained") / "runs"
    result = CliRunner().invoke(app, ["train", "--class", "dog", "--data", str(real_tree), "--runs", str(runs),
                                      "--epochs", "1", "--init-from", "none", "--snapshot-every", "1",
                                      *TINY_GAN_CLI])
    assert result.exit_code == 0, result.output
    return runs


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def invoke(command: str, runs: Path, real_tree: Path, tmp_path: Path, *extra: str):
    args = {"train": ["train", "--class", "dog", "--data", str(real_tree), "--runs", str(runs), "--epochs", "2",
                      "--init-from", "none", "--snapshot-every", "1", *TINY_GAN_CLI],
            "select": ["select", "--class", "dog", "--data", str(real_tree), "--runs", str(runs), "--quiet"],
            "export": ["export", "--runs", str(runs), "--out", str(tmp_path / "export"), "--count", "5", "--quiet"],
            }[command]
    return CliRunner().invoke(app, [*args, *extra])


@pytest.mark.parametrize("name, command, remedy", [
    ("config.json", "select", "pass --fresh to `cifar-synth train` to start the run over"),
    ("config.json", "export", "pass --fresh to `cifar-synth train` to start the run over"),
    ("config.json", "train", "pass --fresh to start over"),  # train's own words: "cannot read the settings …"
    ("checkpoint/state.json", "train", "pass --fresh to `cifar-synth train` to start the run over"),
    ("checkpoint/state.json", "select", "pass --fresh to `cifar-synth train` to start the run over"),
    ("history.csv", "train", "pass --fresh to `cifar-synth train` to start the run over"),
    ("../dataset.json", "export", "delete it and run `cifar-synth train` with the same --data"),
    ("../dataset.json", "select", "delete it and run `cifar-synth train` with the same --data"),
])
def test_a_truncated_file_of_the_run_is_one_line_naming_it(trained_runs, real_tree, tmp_path, name, command, remedy):
    runs = tmp_path / "runs"
    shutil.copytree(trained_runs, runs)
    path = (runs / "dog" / name).resolve()
    if not path.exists():  # a CIFAR-10 runs folder has no dataset.json: one that is not JSON stands for a truncated one
        path.write_text('{"dataset": "CIFAR-10", "class_na')
    truncate(path)
    result = invoke(command, runs, real_tree, tmp_path)
    assert_user_error(result, f"{path} is unreadable (" if command != "train" or name != "config.json" else
                      f"cannot read the settings {path} of the recorded run: ")
    assert_user_error(result, remedy)
    assert result.output.count("Error:") == 1


def test_a_truncated_checkpoint_is_one_line_naming_it(trained_runs, real_tree, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(trained_runs, runs)
    weights = RunPaths(runs / "dog").weights(1)
    truncate(weights)
    result = invoke("train", runs, real_tree, tmp_path)
    assert_user_error(result, f"cannot load the checkpoint {weights}: ")
    assert_user_error(result, "pass --fresh to `cifar-synth train` to start the run over")


def test_a_truncated_selection_or_chosen_snapshot_is_one_line(trained_runs, real_tree, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(trained_runs, runs)
    paths = RunPaths(runs / "dog")
    steps = json.loads(paths.record.read_text())["steps"]
    paths.selection.write_text(json.dumps({
        "criterion": "test", "chosen": {"steps": steps, "latent_std": 1.0, "snapshot": paths.snapshot(steps).name},
        "candidates": [], "samples": 2, "validation_images": 2, "record_steps": steps}))
    truncate(paths.snapshot(steps))
    assert_user_error(invoke("export", runs, real_tree, tmp_path),
                      f"cannot load generator {paths.snapshot(steps)}: ")
    assert_user_error(invoke("export", runs, real_tree, tmp_path), "delete it and run `cifar-synth select` again")
    assert invoke("export", runs, real_tree, tmp_path, "--no-selection").exit_code == 0

    truncate(paths.selection)
    assert_user_error(invoke("export", runs, real_tree, tmp_path, "--out", str(tmp_path / "again")),
                      f"{paths.selection} is unreadable (")


def test_a_truncated_generator_or_cached_classifier_is_one_line_saying_what_to_do(trained_runs, real_tree, tmp_path,
                                                                                   monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(trained_runs, runs)
    generator = RunPaths(runs / "dog").generator
    saved = generator.read_bytes()
    truncate(generator)
    result = invoke("export", runs, real_tree, tmp_path, "--no-selection")
    assert_user_error(result, f"cannot load generator {generator}: ")
    assert_user_error(result, "run the same `cifar-synth train` command again: it rewrites it from the last checkpoint")
    assert invoke("train", runs, real_tree, tmp_path).exit_code == 0  # and so it does
    assert generator.read_bytes() != saved[: len(saved) // 2]

    entry = tmp_path / "cache" / "0123abcd"
    entry.mkdir(parents=True)
    (entry / "classifier.keras").write_bytes(saved[:100])
    (entry / "metrics.json").write_text("{}")
    result = invoke("export", runs, real_tree, tmp_path, "--filter", "classifier", "--classifier",
                    str(entry / "classifier.keras"))
    assert_user_error(result, f"cannot load classifier {entry / 'classifier.keras'}: ")
    assert_user_error(result, f"delete the cache entry {entry} (an evaluation on this data caches it again)")
