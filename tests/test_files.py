"""Output files (atomic, umask, one-line write errors) and the one-writer lock, without TensorFlow."""

import errno
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest
from conftest import python_env

from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, make_temp_dir, sha256_file, write_json_atomic
from cifar_synth.locks import hold, lock_paths


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_and_temp_dirs_follow_the_umask(tmp_path, umask_027):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert mode(tmp_path / "a.json") == 0o640  # mkstemp alone gives 0600
    assert mode(make_temp_dir(tmp_path, ".staging-")) == 0o750  # mkdtemp alone gives 0700
    os.umask(0o002)
    write_json_atomic(tmp_path / "b.json", {"x": 1})
    assert mode(tmp_path / "b.json") == 0o664


def test_a_failed_write_names_the_path_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    write_json_atomic(target, {"epoch": 1})

    with pytest.raises(UserError, match=f"cannot write {target}: No space left on device"):
        with atomic_path(target) as temp:
            temp.write_text("partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text() == '{\n  "epoch": 1\n}\n'
    assert list(tmp_path.iterdir()) == [target], "no temporary file is left"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line_naming_the_file(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(UserError, match=f"cannot write {tmp_path / 'x.json'}: Permission denied"):
            write_json_atomic(tmp_path / "x.json", {})
    finally:
        tmp_path.chmod(0o755)


def test_sha256_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(UserError, match="cannot read"):
        sha256_file(tmp_path / "absent")


def test_a_held_target_is_refused_naming_the_holder(tmp_path):
    target = tmp_path / "runs" / "dog"
    with hold(target):
        with pytest.raises(UserError, match=rf"run directory {target} is in use by process {os.getpid()} "
                                            rf"on host {socket.gethostname()}"):
            with hold(target):
                pass
    with hold(target):  # released
        pass
    assert not lock_paths(target)[1].exists(), "the holder file goes with the lock"


def test_a_lock_left_by_a_killed_holder_does_not_block(tmp_path):
    target = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom cifar_synth.locks import hold\n"
                               f"with hold({str(target)!r}, 'export target'):\n"
                               "    print('held', flush=True)\n    time.sleep(60)"],
        env=python_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"export target {target} is in use by process {holder.pid}"):
            with hold(target, "export target"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_paths(target)[1].exists(), "SIGKILL left the holder file behind"
    with hold(target, "export target"):
        pass
