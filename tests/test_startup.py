"""Start-up noise: TensorFlow's C++ log stays off stderr unless the user asks for it."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, TINY_GAN_CLI
from cifar_synth.tensorflow_startup import VERBOSE_VARIABLE


def _env_without_log_settings(*path_first: str, **extra: str) -> dict[str, str]:
    """This checkout on the path and none of the variables that quiet or show TensorFlow: the defaults under test."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE_VARIABLE)}
    return {**env, "PYTHONPATH": os.pathsep.join([*path_first, str(REPO_ROOT)]), **extra}


def _import_stand_in(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Import cifar_synth, then a stand-in `tensorflow` that writes to file descriptor 2 as TensorFlow's C++ does, at
    its import and at its first look at the devices (as a machine without a GPU does), then look at the devices."""
    package = tmp_path / "tensorflow"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(
        "import os\nos.write(2, b'C++ start-up line\\n')\n"
        "if os.environ.get('BREAK_IMPORT'):\n    raise ImportError('broken install')\n"
        "_probed = []\n"
        "class config:\n"  # the CUDA probe logs once per process, at the first look at the devices
        "    @staticmethod\n"
        "    def list_physical_devices(device_type=None):\n"
        "        if not _probed and os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0') < '3':\n"
        "            os.write(2, b'E0000 cuda_platform.cc:52] failed call to cuInit: (303)\\n')\n"
        "        _probed.append(1)\n"
        "        return []\n")
    code = "import cifar_synth, tensorflow; tensorflow.config.list_physical_devices('GPU')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env_without_log_settings(str(tmp_path), **env))


def test_tensorflow_start_up_lines_are_hidden_by_default(tmp_path):
    result = _import_stand_in(tmp_path)
    assert result.returncode == 0 and result.stderr == ""


def test_the_verbose_variable_shows_them(tmp_path):
    stderr = _import_stand_in(tmp_path, **{VERBOSE_VARIABLE: "1"}).stderr
    assert "C++ start-up line" in stderr and "cuInit" in stderr


def test_the_cuda_probe_is_hidden_when_the_user_set_a_log_level(tmp_path):
    """TF_CPP_MIN_LOG_LEVEL=2 (a common setting) lets ERROR lines through; the probe's cuInit line is one of them."""
    result = _import_stand_in(tmp_path, TF_CPP_MIN_LOG_LEVEL="2")
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.slow
def test_real_tensorflow_with_log_level_2_prints_nothing(tmp_path):
    """The real import and device probe (a machine without a GPU prints `E0000 … failed call to cuInit` here)."""
    code = ("import cifar_synth, tensorflow as tf\n"
            "tf.config.threading.set_intra_op_parallelism_threads(1)\n"  # still settable after the probe
            "tf.config.list_physical_devices(); print(int(tf.constant(1) + 1))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_env_without_log_settings(TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\n" and result.stderr == ""


def test_a_failing_tensorflow_import_shows_what_it_printed(tmp_path):
    result = _import_stand_in(tmp_path, BREAK_IMPORT="1")
    assert result.returncode == 1
    assert "C++ start-up line" in result.stderr and "broken install" in result.stderr


@pytest.mark.slow
def test_train_prints_nothing_on_stderr(real_tree, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cifar_synth", "train", "--class", "dog", "--epochs", "1", "--data", str(real_tree),
         "--runs", str(tmp_path / "runs"), *TINY_GAN_CLI], capture_output=True, text=True,
        env=_env_without_log_settings())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
