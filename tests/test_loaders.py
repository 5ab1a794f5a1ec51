"""Every loader docs/export.md shows reads an export as the same images and labels as `load_synthetic`.

pandas, pyarrow, Hugging Face `datasets` (the export root, as on the Hub, and an old export's parquet/), Keras'
`image_dataset_from_directory` on images/, `tf.data` from the Parquet shards, and PyTorch (torchvision's
`ImageFolder`, and `datasets` `.with_format("torch")`); the PyTorch tests skip where torch is not installed.
"""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_export
from PIL import Image

from cifar_synth import load_tf_dataset
from cifar_synth.classes import CIFAR10
from cifar_synth.synthetic import load_synthetic

CLASSES = ("airplane", "dog", "truck")


@pytest.fixture(scope="module")
def export_dir(runs, tmp_path_factory) -> Path:
    """An export of airplane, dog and truck, 20 images each, in Parquet and images/."""
    out = tmp_path_factory.mktemp("loaders") / "export"
    result = run_export(runs, out, "--format", "parquet", "--format", "images", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def expected(export_dir):
    return load_synthetic(export_dir)


def hugging_face_datasets():
    datasets = pytest.importorskip("datasets")
    if not hasattr(datasets, "load_dataset"):  # the repository's own datasets/ folder, not Hugging Face's
        pytest.skip("Hugging Face datasets is not installed")
    return datasets


def test_pandas(export_dir, expected):
    import pandas as pd

    frame = pd.read_parquet(export_dir / "data")
    images = np.stack([np.asarray(Image.open(io.BytesIO(cell["bytes"]))) for cell in frame["img"]])
    np.testing.assert_array_equal(images, expected.images)
    np.testing.assert_array_equal(frame["label"].to_numpy(), expected.labels)


def test_pyarrow(export_dir, expected):
    import pyarrow.parquet as pq

    table = pq.read_table(export_dir / "data")
    assert table.column("img").combine_chunks().field("path")[0].as_py() == "airplane/00000.png"
    assert table.column("label").to_pylist() == expected.labels.tolist()


def test_datasets_loads_the_export_root_like_a_hub_repository(export_dir, expected, tmp_path):
    datasets = hugging_face_datasets()
    dataset = datasets.load_dataset(str(export_dir), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(dataset.features["img"], datasets.Image)
    assert isinstance(dataset.features["label"], datasets.ClassLabel)
    assert dataset.features["label"].names == list(CIFAR10.names)
    assert dataset.num_rows == len(expected)
    np.testing.assert_array_equal(np.asarray(dataset[25]["img"]), expected.images[25])
    assert dataset["label"] == expected.labels.tolist()


def test_an_old_export_with_parquet_folder_still_loads(export_dir, expected, tmp_path):
    """Format version 1 kept the shards in parquet/ and had no card: load_synthetic and datasets read it as before."""
    datasets = hugging_face_datasets()
    old = tmp_path / "old"
    shutil.copytree(export_dir / "data", old / "parquet")
    manifest = json.loads((export_dir / "manifest.json").read_text())
    manifest["format_version"] = 1
    for entry in manifest["files"]:
        entry["path"] = entry["path"].replace("data/", "parquet/")
    manifest["files"] = [entry for entry in manifest["files"] if entry["format"] == "parquet"]
    manifest["formats"] = ["parquet"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    for source in (old, old / "parquet"):
        np.testing.assert_array_equal(load_synthetic(source).images, expected.images)
    dataset = datasets.load_dataset("parquet", data_dir=str(old / "parquet"), split="train",
                                    cache_dir=str(tmp_path / "cache"))
    assert dataset.features["label"].names == list(CIFAR10.names) and dataset.num_rows == len(expected)


def test_keras_image_dataset_from_directory(export_dir, expected):
    import keras

    dataset = keras.utils.image_dataset_from_directory(export_dir / "images", image_size=(32, 32), shuffle=False,
                                                       batch_size=None)
    assert dataset.class_names == list(CLASSES)  # numbered by the folders present: 0 airplane, 1 dog, 2 truck
    images, labels = zip(*[(image.numpy(), int(label)) for image, label in dataset])
    np.testing.assert_array_equal(np.stack(images).astype(np.uint8), expected.images)
    assert [CIFAR10.label(CLASSES[label]) for label in labels] == expected.labels.tolist()


def test_tf_data_from_the_parquet_shards(export_dir, expected):
    """The docs' streaming recipe (pyarrow batches → tf.io.decode_png) and the API's `load_tf_dataset`."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    def rows():
        for path in sorted((export_dir / "data").glob("*.parquet")):
            for batch in pq.ParquetFile(path).iter_batches(columns=["img", "label"]):
                yield from zip(batch.column("img").field("bytes").to_pylist(), batch.column("label").to_pylist())

    streamed = tf.data.Dataset.from_generator(
        rows, output_signature=(tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int64)))
    streamed = streamed.map(lambda png, label: (tf.io.decode_png(png, channels=3), label))
    for dataset in (streamed, load_tf_dataset(export_dir)):
        images, labels = zip(*[(image.numpy(), int(label)) for image, label in dataset])
        np.testing.assert_array_equal(np.stack(images), expected.images)
        assert list(labels) == expected.labels.tolist()


def test_torchvision_image_folder(export_dir, expected):
    pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    dataset = torchvision.datasets.ImageFolder(str(export_dir / "images"))
    assert dataset.classes == list(CLASSES)
    images = np.stack([np.asarray(image) for image, _ in dataset])
    np.testing.assert_array_equal(images, expected.images)
    assert [CIFAR10.label(dataset.classes[label]) for _, label in dataset] == expected.labels.tolist()


def test_datasets_with_format_torch(export_dir, expected, tmp_path):
    torch = pytest.importorskip("torch")
    datasets = hugging_face_datasets()
    dataset = datasets.load_dataset(str(export_dir), split="train", cache_dir=str(tmp_path / "cache"))
    loader = torch.utils.data.DataLoader(dataset.with_format("torch"), batch_size=16)
    batches = list(loader)
    images = torch.cat([batch["img"] for batch in batches])
    assert images.dtype == torch.uint8 and tuple(images.shape[1:]) in ((32, 32, 3), (3, 32, 32))
    if tuple(images.shape[1:]) == (3, 32, 32):
        images = images.permute(0, 2, 3, 1)
    np.testing.assert_array_equal(images.numpy(), expected.images)
    assert torch.cat([batch["label"] for batch in batches]).tolist() == expected.labels.tolist()
