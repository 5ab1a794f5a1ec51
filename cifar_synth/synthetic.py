"""The on-disk layout of `cifar-synth export`, and `load_synthetic`, which reads it (and like files of other tools).

Layout of an export directory (see docs/export.md):
    manifest.json
    parquet/train-00000-of-000NN.parquet   img: struct{bytes: PNG, path}, label: int64, Hugging Face metadata
    csv/train.csv                          label, label_name, r0c0_r, r0c0_g, r0c0_b, r0c1_r, …, r31c31_b
    images/<class>/<index>.png             the class-folder tree image_dataset_from_directory and ImageFolder read
"""

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.errors import UserError
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

FORMAT_VERSION = 1
FORMATS = ("parquet", "images", "csv")  # also the preference order when an export holds several
MANIFEST = "manifest.json"
PARQUET_DIR = "parquet"
CSV_FILE = "csv/train.csv"
IMAGES_DIR = "images"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Pixel columns in the order of `images.reshape(N, 3072)`: row-major over the 32×32 grid, then R, G, B per pixel.
PIXEL_COLUMNS = tuple(
    f"r{row}c{col}_{channel}" for row in range(IMAGE_SHAPE[0]) for col in range(IMAGE_SHAPE[1]) for channel in "rgb"
)
CSV_COLUMNS = ("label", "label_name", *PIXEL_COLUMNS)

# The schema `datasets` reads as {img: Image, label: ClassLabel(CIFAR-10 names)}, the layout of the Hub's cifar10.
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("img", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
        pa.field("label", pa.int64()),
    ],
    metadata={
        b"huggingface": json.dumps(
            {"info": {"features": {
                "img": {"_type": "Image"},
                "label": {"_type": "ClassLabel", "names": list(CLASS_NAMES)},
            }}}
        ).encode()
    },
)
_READ_CHUNK_ROWS = 5_000


def encode_png(image: np.ndarray) -> bytes:
    """One uint8 (32, 32, 3) image as PNG bytes; Pillow's encoder is deterministic for a given zlib."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def load_synthetic(path: str | Path) -> LabeledImages:
    """Read an export directory, a .parquet/.csv file, a directory of them, or a class-folder tree."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    fmt, sources = _locate(path)
    data = _READERS[fmt](sources)
    if len(data) == 0:
        raise UserError(f"{path} holds no images")
    if data.labels.min() < 0 or data.labels.max() >= len(CLASS_NAMES):
        bad = data.labels[(data.labels < 0) | (data.labels >= len(CLASS_NAMES))][0]
        raise UserError(f"{path}: label {bad} is outside 0–{len(CLASS_NAMES) - 1}")
    return data


def _locate(path: Path) -> tuple[str, list[Path]]:
    """Which format to read and from which files (for `images`: the class-folder root)."""
    if path.is_file():
        name = path.name.lower()
        if name.endswith(".parquet"):
            return "parquet", [path]
        if name.endswith((".csv", ".csv.gz")):
            return "csv", [path]
        raise UserError(f"{path}: not a .parquet or .csv file, nor a directory")
    if (path / MANIFEST).is_file():
        return _locate_from_manifest(path)
    for fmt in FORMATS:
        sources = _find(path, fmt)
        if sources:
            return fmt, sources
    raise UserError(
        f"{path} holds no dataset: expected .parquet files, .csv files or class folders "
        f"({', '.join(CLASS_NAMES)}) of images, here or in parquet/, csv/ or images/"
    )


def _find(path: Path, fmt: str) -> list[Path]:
    if fmt == "parquet":
        return sorted(path.glob("*.parquet")) or sorted((path / PARQUET_DIR).glob("*.parquet"))
    if fmt == "csv":
        return sorted(path.glob("*.csv")) or sorted((path / CSV_FILE).parent.glob("*.csv"))
    return [root for root in (path / IMAGES_DIR, path) if root.is_dir() and _class_folders(root)][:1]


def _locate_from_manifest(path: Path) -> tuple[str, list[Path]]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        version, written, files = manifest["format_version"], manifest["formats"], manifest["files"]
        too_new = version > FORMAT_VERSION
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path / MANIFEST} is not a valid export manifest: {error}") from None
    if too_new:
        raise UserError(f"{path} was written by a newer cifar-synth (format version {version}); upgrade to read it")
    fmt = next((fmt for fmt in FORMATS if fmt in written), None)
    if fmt is None:
        raise UserError(f"{path / MANIFEST} lists no known format (formats: {written})")
    if fmt == "images":
        sources = [path / IMAGES_DIR]
    else:
        sources = [path / entry["path"] for entry in files if entry["format"] == fmt]
    missing = [str(source) for source in sources if not source.exists()]
    if missing:
        raise UserError(f"{path} is incomplete: {', '.join(missing)} listed in {MANIFEST} but missing")
    return fmt, sources


def _read_parquet(files: list[Path]) -> LabeledImages:
    images, labels = [], []
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except (OSError, pa.ArrowException) as error:
            raise UserError(f"{file}: not a readable parquet file ({error})") from None
        names = parquet.schema_arrow.names
        column = next((name for name in ("img", "image") if name in names), None)
        if column is None or "label" not in names:
            raise UserError(f"{file}: expected an 'img' (or 'image') column and a 'label' column, found {names}")
        file_images = np.empty((parquet.metadata.num_rows, *IMAGE_SHAPE), np.uint8)
        row = 0
        for batch in parquet.iter_batches(batch_size=_READ_CHUNK_ROWS, columns=[column, "label"]):
            pngs = batch.column(column)
            pngs = pngs.field("bytes") if pa.types.is_struct(pngs.type) else pngs
            for data in pngs.to_pylist():
                file_images[row] = _decode(data, f"{file} row {row}")
                row += 1
            if batch.column("label").null_count:
                raise UserError(f"{file}: the label column has missing values")
            labels.append(batch.column("label").to_numpy(zero_copy_only=False).astype(np.int64))
        images.append(file_images)
    return _concatenate(images, labels)


def _read_csv(files: list[Path]) -> LabeledImages:
    images, labels = [], []
    for file in files:
        try:
            header = list(pd.read_csv(file, nrows=0).columns)
        except (OSError, ValueError) as error:
            raise UserError(f"{file}: not a readable CSV file ({error})") from None
        pixels = [name for name in header if name not in ("label", "label_name")]
        if "label" not in header or len(pixels) != len(PIXEL_COLUMNS):
            raise UserError(
                f"{file}: expected a 'label' column and {len(PIXEL_COLUMNS)} pixel columns "
                f"(r0c0_r … r31c31_b), found {len(pixels)} other columns"
            )
        # Our own column names fix the order; other tools' files are taken to use the same layout positionally.
        if set(pixels) == set(PIXEL_COLUMNS):
            pixels = list(PIXEL_COLUMNS)
        dtypes = {"label": np.int64, "label_name": str} | dict.fromkeys(pixels, np.uint8)
        try:
            for chunk in pd.read_csv(file, dtype=dtypes, chunksize=_READ_CHUNK_ROWS, index_col=False):
                chunk_labels = chunk["label"].to_numpy()
                if "label_name" in chunk:
                    _check_label_names(file, chunk_labels, chunk["label_name"].to_numpy())
                labels.append(chunk_labels)
                images.append(chunk[pixels].to_numpy().reshape(-1, *IMAGE_SHAPE))
        except ValueError as error:  # pandas' parse errors: non-integers, values outside 0–255, missing cells
            raise UserError(f"{file}: {error}") from None
    return _concatenate(images, labels)


def _check_label_names(file: Path, labels: np.ndarray, names: np.ndarray) -> None:
    valid = (labels >= 0) & (labels < len(CLASS_NAMES))
    expected = np.asarray(CLASS_NAMES)[np.where(valid, labels, 0)]
    wrong = np.flatnonzero(valid & (expected != names))
    if wrong.size:
        row = wrong[0]
        raise UserError(
            f"{file}: label {labels[row]} has label_name {str(names[row])!r}, expected {str(expected[row])!r}")


def _read_images(roots: list[Path]) -> LabeledImages:
    images, labels = [], []
    for folder, label in _class_folders(roots[0]):
        files = sorted(file for file in folder.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
        folder_images = np.empty((len(files), *IMAGE_SHAPE), np.uint8)
        for index, file in enumerate(files):
            folder_images[index] = _decode(file.read_bytes(), str(file))
        images.append(folder_images)
        labels.append(np.full(len(files), label, np.int64))
    return _concatenate(images, labels)


def _class_folders(root: Path) -> list[tuple[Path, int]]:
    """The class subfolders of `root` in label order; any other subfolder is an error, none means not a tree."""
    folders = [entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")]
    known = {name: label for label, name in enumerate(CLASS_NAMES)}
    classes = [(folder, known[folder.name.lower()]) for folder in folders if folder.name.lower() in known]
    if not classes:
        return []
    unknown = sorted(folder.name for folder in folders if folder.name.lower() not in known)
    if unknown:
        raise UserError(f"{root}: folders {', '.join(unknown)} are not CIFAR-10 classes ({', '.join(CLASS_NAMES)})")
    return sorted(classes, key=lambda item: item[1])


def _decode(data: bytes | None, where: str) -> np.ndarray:
    if data is None:
        raise UserError(f"{where}: no embedded image bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"{where}: not a readable image ({error})") from None
    if pixels.shape != IMAGE_SHAPE:
        raise UserError(f"{where}: image is {pixels.shape[1]}×{pixels.shape[0]}, expected 32×32")
    return pixels


def _concatenate(images: list[np.ndarray], labels: list[np.ndarray]) -> LabeledImages:
    if not images:
        return LabeledImages(np.empty((0, *IMAGE_SHAPE), np.uint8), np.empty(0, np.int64))
    return LabeledImages(np.concatenate(images), np.concatenate(labels).astype(np.int64))


_READERS = {"parquet": _read_parquet, "csv": _read_csv, "images": _read_images}
