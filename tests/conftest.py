"""What several test modules share: tiny generated data, tiny networks, and the check of a user error.

Plain helpers are imported with `from conftest import …` (pytest puts tests/ on sys.path); fixtures need no import.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:  # where PyTorch is installed (tests/test_loaders.py): torchvision imported after TensorFlow crashed the process
    import torchvision  # noqa: F401  (torchvision 0.29 / TensorFlow 2.21: a segfault importing triton)
except ImportError:
    pass

from cifar_synth.classes import CIFAR10
from cifar_synth.config import GANConfig
from cifar_synth.images import LabeledImages

REPO_ROOT = Path(__file__).resolve().parent.parent
# The smallest networks `train` accepts in reasonable time: a step takes milliseconds.
TINY_GAN = GANConfig(latent_dim=8, g_width=4, d_width=4, batch_size=8)
TINY_GAN_CLI = ["--latent-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--quiet"]


def assert_user_error(result, message: str) -> None:
    """A CliRunner result that failed the way a user mistake should: exit 1, `message`, no traceback."""
    assert result.exit_code == 1, result.output
    assert "".join(message.split()) in "".join(result.output.split())  # Rich wraps long lines anywhere
    assert "Traceback" not in result.output


def random_images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def write_tree(root: Path, data: LabeledImages) -> Path:
    """`root/<class>/<index>.png` for every image; returns `root`."""
    for index, (image, label) in enumerate(zip(data.images, data.labels)):
        folder = root / CIFAR10.names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return root


def write_real_tree(root: Path, per_class: int = 16, seed: int = 1) -> Path:
    """A real-data class-folder tree `root/{train,test}/<class>/*.png` of random images; returns `root`."""
    for offset, split in enumerate(("train", "test")):
        labels = np.repeat(np.arange(len(CIFAR10.names)), per_class)
        write_tree(root / split, LabeledImages(random_images(len(labels), seed + offset), labels))
    return root


ODD = ("Sea Lion", "ZEBRA", "Ñandú")  # sorted by code point: the label order of a tree of them
PER_CLASS = 16
ODD_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (240, 240, 240))  # class i: colour i % 4


def write_odd_tree(root: Path, names=ODD, per_class: int = PER_CLASS, splits=("train", "test")) -> Path:
    """`root/{train,test}/<name>/*.png`: each class a solid colour plus noise, so a tiny CNN tells them apart."""
    rng = np.random.default_rng(0)
    for split in splits:
        for index, name in enumerate(names):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            colour = np.array(ODD_COLOURS[index % len(ODD_COLOURS)])
            for i in range(per_class):
                pixels = np.clip(colour + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:03d}.png")
    return root


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m cifar_synth` subprocess that imports this checkout, quietly."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def cli_process(*args: str, **popen) -> subprocess.Popen:
    """`python -m cifar_synth ARGS` in a process of its own (for tests that kill or race it)."""
    return subprocess.Popen([sys.executable, "-m", "cifar_synth", *args], env=python_env(), text=True, **popen)


@pytest.fixture
def tiny_images() -> np.ndarray:
    """32 random uint8 images: four steps of a `TINY_GAN` epoch."""
    return random_images(32, seed=0)


@pytest.fixture(scope="session")
def real_tree(tmp_path_factory) -> Path:
    """A real-data class-folder tree with 16 random images per class and split (read-only: tests share it)."""
    return write_real_tree(tmp_path_factory.mktemp("real") / "cifar10")


# --- Ray (tests/test_scale.py, tests/test_evaluate.py) ---------------------------------------------------------

@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the session (its start-up costs seconds): loopback only, no dashboard, no usage stats."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Read when Ray is imported: the node is then 127.0.0.1 and every Ray server listens on loopback only
    # (otherwise on all interfaces, even with _node_ip_address="127.0.0.1").
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # Ray renices its workers by 15 (to 19 under a `nice -n 5` pytest), which beside other busy processes gets a
    # task ~1% of a core: measured 344 s for a one-step classifier that took 14 s as a submitit subprocess.
    os.environ["RAY_worker_niceness"] = "0"
    ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    yield ray
    ray.shutdown()


# --- trained runs for export, show and publish (tiny Dense generators) -------------------------------------------

LATENT_DIM = 8


def save_generator(runs: Path, class_name: str, shape=(32, 32, 3), brightness: bool = False) -> None:
    """A tiny Dense generator (LATENT_DIM → `shape`, tanh) and its config.json, as `train` leaves them."""
    import keras

    keras.utils.set_random_seed(CIFAR10.label(class_name))
    generator = keras.Sequential([
        keras.Input((LATENT_DIM,)),
        keras.layers.Dense(int(np.prod(shape)), activation="tanh"),
        keras.layers.Reshape(shape),
    ])
    if brightness:  # every pixel tanh(2·z0 + a little of the rest): the mean brightness rises with z0
        kernel = np.random.default_rng(0).normal(0, 0.3, (LATENT_DIM, int(np.prod(shape))))
        kernel[0] = 2.0
        generator.layers[0].set_weights([kernel, np.zeros(kernel.shape[1])])
    (runs / class_name).mkdir(parents=True)
    generator.save(runs / class_name / "generator.keras")
    (runs / class_name / "config.json").write_text(json.dumps({"class_name": class_name, "latent_dim": LATENT_DIM}))


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Path:
    """Tiny Dense generators of airplane, dog and truck as runs/<class>/generator.keras (read-only: shared)."""
    runs = tmp_path_factory.mktemp("runs")
    for class_name in ("airplane", "dog", "truck"):
        save_generator(runs, class_name)
    return runs


def run_export(runs: Path, out: Path, *args: str, count: int = 20):
    """`cifar-synth export --runs RUNS --out OUT --count COUNT ARGS` through the CLI runner; its result."""
    from typer.testing import CliRunner

    from cifar_synth.cli import app

    return CliRunner().invoke(app, ["export", "--runs", str(runs), "--out", str(out), "--count", str(count), *args])


def visible(folder: Path) -> list[str]:
    """The names in `folder` that are not hidden."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def leftovers(folder: Path) -> list[str]:
    """Hidden staging or set-aside folders beside exports (lock files `.<name>.lock` and `.lock.json` may stay)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(".") and not p.name.endswith((".lock", ".lock.json")))
