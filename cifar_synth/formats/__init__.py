"""The export's data formats. Each module holds one format's layout, writer and reader side by side:

    parquet.py   data/train-XXXXX-of-YYYYY.parquet   img: struct{bytes: PNG, path}, label: int64 (the Hub's layout)
    csv.py       csv/train.csv                        label, label_name, r0c0_r, r0c0_g, …, r31c31_b
    images.py    images/<class>/<index>.png           the tree image_dataset_from_directory and ImageFolder read

A writer takes the export's batches in order (`write`), then `finish` returns the manifest's entries for its files.
Only numpy, pyarrow, pandas and Pillow are imported here: PNG encoding runs in worker processes without TensorFlow.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.files import sha256_file
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

FORMATS = ("parquet", "images", "csv")  # also the preference order when an export holds several


@dataclass(frozen=True)
class Batch:
    """Consecutive images of one class, named `<index>.png`; `pngs` is set when a format needs them."""

    label: int
    images: np.ndarray
    names: list[str]
    pngs: list[bytes] | None

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


class Writer:
    """One output format: `write` each batch in order, then `finish` for the manifest's file entries."""

    needs_png = True

    def __init__(self, root: Path, total_rows: int):
        self.root = root
        self.total_rows = total_rows

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def finish(self) -> list[dict]:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (also on failure, when the staging directory is about to be deleted)."""


def file_entry(root: Path, path: Path, fmt: str, rows: int) -> dict:
    """The manifest's entry for one data file."""
    return {"path": path.relative_to(root).as_posix(), "format": fmt, "rows": rows, "files": 1,
            "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def concatenate(images: list[np.ndarray], labels: list[np.ndarray]) -> LabeledImages:
    """One `LabeledImages` from per-file (or per-folder) parts."""
    if not images:
        return LabeledImages(np.empty((0, *IMAGE_SHAPE), np.uint8), np.empty(0, np.int64))
    return LabeledImages(np.concatenate(images), np.concatenate(labels).astype(np.int64))
