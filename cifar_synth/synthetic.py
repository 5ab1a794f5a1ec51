"""Reading a synthetic dataset back: `load_synthetic` (arrays) and `load_tf_dataset` (a `tf.data.Dataset`).

They read an export directory (see docs/export.md for its layout; the formats are in `cifar_synth.formats`), one
of its data files, or like files and class-folder trees written by other tools. An export's classes are those its
manifest names (exports from before it named them are CIFAR-10's); Parquet files without a manifest hold the classes
their `ClassLabel` metadata names, CSV files and trees without a manifest CIFAR-10's.
"""

import json
from pathlib import Path

from cifar_synth.classes import CIFAR10, Classes, classes_of
from cifar_synth.errors import UserError
from cifar_synth.formats import FORMATS
from cifar_synth.formats import parquet
from cifar_synth.formats.images import IMAGES_DIR
from cifar_synth.images import LabeledImages

# 2: the Hugging Face dataset repository layout (README.md card, Parquet in data/); 1 kept Parquet in parquet/.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"


def load_synthetic(path: str | Path) -> LabeledImages:
    """Read an export directory, a .parquet/.csv file, a directory of them, or a class-folder tree."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    fmt, sources, classes = _locate(path)
    data = FORMATS[fmt].read(sources, classes)
    if len(data) == 0:
        raise UserError(f"{path} holds no images")
    if data.labels.min() < 0 or data.labels.max() >= len(classes):
        bad = data.labels[(data.labels < 0) | (data.labels >= len(classes))][0]
        raise UserError(f"{path}: label {bad} is outside 0–{len(classes) - 1}")
    return data


def load_tf_dataset(path: str | Path):
    """`load_synthetic(path)` as a `tf.data.Dataset` of (uint8 image (32, 32, 3), int64 label) pairs."""
    import tensorflow as tf

    data = load_synthetic(path)
    return tf.data.Dataset.from_tensor_slices((data.images, data.labels))


def read_manifest(path: Path) -> dict:
    """The manifest of the export directory `path`, checked to be one this version can read."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        version = manifest["format_version"]
        too_new = version > FORMAT_VERSION
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path / MANIFEST} is not a valid export manifest: {error}") from None
    if too_new:
        raise UserError(f"{path} was written by a newer cifar-synth (format version {version}); upgrade to read it")
    return manifest


def export_classes(manifest: dict, path: Path) -> Classes:
    """The classes of the export whose manifest is `manifest` (CIFAR-10's when it names none)."""
    return classes_of(manifest.get("dataset"), str(path / MANIFEST))


def _locate(path: Path) -> tuple[str, list[Path], Classes]:
    """Which format to read, from which files (for `images`: the class-folder root) and as which classes."""
    if path.is_file():
        name = path.name.lower()
        if name.endswith(".parquet"):
            return "parquet", [path], parquet.classes_of([path])
        if name.endswith((".csv", ".csv.gz")):
            return "csv", [path], CIFAR10
        raise UserError(f"{path}: not a .parquet or .csv file, nor a directory")
    if (path / MANIFEST).is_file():
        return _locate_from_manifest(path)
    for fmt in FORMATS:
        sources = FORMATS[fmt].find(path)
        if sources:
            return fmt, sources, parquet.classes_of(sources) if fmt == "parquet" else CIFAR10
    raise UserError(
        f"{path} holds no dataset: expected .parquet files, .csv files or class folders "
        f"({', '.join(CIFAR10.names)}) of images, here or in data/, parquet/, csv/ or images/"
    )


def _locate_from_manifest(path: Path) -> tuple[str, list[Path], Classes]:
    manifest = read_manifest(path)
    try:
        written, files = manifest["formats"], manifest["files"]
        fmt = next((fmt for fmt in FORMATS if fmt in written), None)
        sources = [path / entry["path"] for entry in files if entry["format"] == fmt]
    except (KeyError, TypeError) as error:
        raise UserError(f"{path / MANIFEST} is not a valid export manifest: {error}") from None
    if fmt is None:
        raise UserError(f"{path / MANIFEST} lists no known format (formats: {written})")
    missing = [str(source) for source in sources if not source.exists()]
    if missing:
        raise UserError(f"{path} is incomplete: {', '.join(missing)} listed in {MANIFEST} but missing")
    if fmt == "images":
        sources = [path / IMAGES_DIR]
    return fmt, sources, export_classes(manifest, path)
