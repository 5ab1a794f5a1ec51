"""Issue 10's export faults: the --overwrite swap (4), files that follow the umask (5), one writer per target (7),
a full disk or read-only target (8), and what killed exports leave behind. The random-kill proof is
benchmarks/kill_export.py (results in docs/benchmarks.md)."""

import errno
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import assert_user_error, leftovers, python_env, visible
from conftest import run_export as export

from cifar_synth import files
from cifar_synth.formats.parquet import ParquetWriter


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def old_export(runs, tmp_path) -> tuple[Path, dict[str, bytes]]:
    """An export of dog at seed 0 in tmp_path/export, and its files' bytes."""
    out = tmp_path / "export"
    assert export(runs, out, "--class", "dog", "--format", "parquet", "--format", "images").exit_code == 0
    return out, snapshot(out)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("a bug"), MemoryError(),
                                   OSError(errno.ENOSPC, "No space left on device")])
def test_any_failure_before_the_swap_keeps_the_old_export(runs, old_export, monkeypatch, error):
    out, before = old_export

    def fail(self, batch):
        raise error

    monkeypatch.setattr(ParquetWriter, "write", fail)
    result = export(runs, out, "--class", "dog", "--seed", "1", "--overwrite")
    assert result.exit_code != 0
    assert snapshot(out) == before and visible(out.parent) == ["export"] and leftovers(out.parent) == []


def test_full_disk_is_one_line_naming_the_path_and_the_old_export_stays(runs, old_export, monkeypatch):
    out, before = old_export

    def full(self, batch):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.directory / "train-00000-of-00001.parquet"))

    monkeypatch.setattr(ParquetWriter, "write", full)
    result = export(runs, out, "--class", "dog", "--seed", "1", "--overwrite")
    assert_user_error(result, f"writing {out} failed: No space left on device")
    assert "train-00000-of-00001.parquet);theexistingexportat" in "".join(result.output.split())
    assert result.output.count("Error:") == 1
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_read_only_target_folder_is_one_line_naming_it(runs, tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    result = export(runs, tmp_path / "export", "--class", "dog")
    assert_user_error(result, f"cannot write {tmp_path}/.export.partial-…: Read-only file system")
    assert visible(tmp_path) == [] and leftovers(tmp_path) == []


def test_an_exception_between_the_two_renames_puts_the_old_export_back(runs, old_export, monkeypatch):
    """Where directories cannot be exchanged atomically, the old export is renamed aside first."""
    out, before = old_export
    monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    rename = os.rename

    def interrupted(source, destination):
        if Path(source).name.startswith(".export.partial-"):
            raise KeyboardInterrupt
        rename(source, destination)

    monkeypatch.setattr(files.os, "rename", interrupted)
    assert export(runs, out, "--class", "dog", "--seed", "1", "--overwrite").exit_code == 130
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_the_fallback_swap_replaces_the_export(runs, old_export, tmp_path, monkeypatch):
    out, before = old_export
    monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    assert export(runs, out, "--class", "dog", "--seed", "1", "--overwrite").exit_code == 0
    assert snapshot(out) != before and leftovers(out.parent) == []


def test_the_next_export_restores_an_export_a_kill_left_aside_and_removes_staging_folders(runs, old_export):
    """The states a kill -9 can leave: the old export renamed aside (target missing), partial staging folders."""
    out, before = old_export
    aside = out.parent / ".export.old-k1ll3d"
    os.rename(out, aside)
    partial = out.parent / ".export.partial-k1ll3d"
    (partial / "data").mkdir(parents=True)
    (partial / "data/train-00000-of-00001.parquet").write_bytes(b"\0" * 2_000_000)

    result = export(runs, out, "--class", "dog")  # no --overwrite: the restored export is still protected
    assert_user_error(result, f"{out} already exists; pass --overwrite")
    output = "".join(result.output.split())
    assert "".join(f"Warning: restored the previous export at {out}".split()) in output
    assert "".join(f"Warning: removed {partial} (2.0 MB), left by a killed export".split()) in output
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_a_swapped_out_export_left_by_a_kill_is_removed(runs, old_export):
    """After the atomic exchange the staging folder holds the old export until it is deleted."""
    out, _ = old_export
    stale = out.parent / ".export.partial-k1ll3d"
    stale.mkdir()
    (stale / "manifest.json").write_text("{}")
    result = export(runs, out, "--class", "dog", "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"removed{stale}" in "".join(result.output.split())
    assert leftovers(out.parent) == []


def test_a_target_in_use_is_refused_naming_the_holder(runs, tmp_path):
    out = tmp_path / "export"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom cifar_synth.locks import hold\n"
         f"with hold({str(out)!r}, 'export target'):\n    print('held', flush=True)\n    time.sleep(120)"],
        env=python_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = export(runs, out, "--class", "dog")
        assert_user_error(result, f"export target {out} is in use by process {holder.pid} on host")
    finally:
        holder.kill()
        holder.wait()
    assert visible(tmp_path) == [] and leftovers(tmp_path) == []
    assert export(runs, out, "--class", "dog").exit_code == 0  # a killed holder does not block


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_encoders_exit_when_their_export_is_killed(tmp_path):
    """A SIGKILLed export cannot shut its PNG encoders down; left alone they would wait for work for ever."""
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent("""
        if __name__ == "__main__":  # the spawned encoders import this file too
            import multiprocessing, time
            import numpy as np
            from cifar_synth.exporter import _encoders
            from cifar_synth.formats.images import encode_pngs
            with _encoders() as pool:
                for future in [pool.submit(encode_pngs, np.zeros((1, 32, 32, 3), np.uint8)) for _ in range(4)]:
                    future.result()
                print(*[process.pid for process in multiprocessing.active_children()], flush=True)
                time.sleep(600)
    """))
    holder = subprocess.Popen([sys.executable, str(script)], env=python_env(), stdout=subprocess.PIPE, text=True)
    encoders = [int(pid) for pid in holder.stdout.readline().split()]
    holder.kill()
    holder.wait()

    def alive() -> list[int]:
        states = [(pid, Path(f"/proc/{pid}/stat")) for pid in encoders]
        return [pid for pid, stat in states if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"]

    deadline = time.monotonic() + 60
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive()
    for pid in left:
        os.kill(pid, 9)
    assert encoders and left == []


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_exported_files_and_folders_follow_the_umask(runs, tmp_path, umask):
    out = tmp_path / "export"
    previous = os.umask(umask)
    try:
        result = export(runs, out, "--class", "dog", "--format", "parquet", "--format", "csv", "--format", "images")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    paths = [out, *out.rglob("*")]
    assert {oct(p.stat().st_mode & 0o777) for p in paths if p.is_dir()} == {oct(0o777 & ~umask)}
    assert {oct(p.stat().st_mode & 0o777) for p in paths if p.is_file()} == {oct(0o666 & ~umask)}
