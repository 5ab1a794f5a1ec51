"""What every export format shares: the batches the export hands its writers, the writer interface, the manifest's
file entries and joining what a reader read. The formats' modules import this; `cifar_synth.formats` imports them.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_synth.classes import Classes
from cifar_synth.files import sha256_file
from cifar_synth.images import IMAGE_SHAPE, LabeledImages


@dataclass(frozen=True)
class Batch:
    """Consecutive images of one class, named `<index>.png`; `pngs` is set when a format needs them."""

    label: int
    class_name: str
    images: np.ndarray
    names: list[str]
    pngs: list[bytes] | None


class Writer:
    """One output format: `write` each batch in order, then `finish` for the manifest's file entries."""

    needs_png = True

    def __init__(self, root: Path, total_rows: int, classes: Classes):
        self.root = root
        self.total_rows = total_rows
        self.classes = classes

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


def concatenate(images: list[np.ndarray], labels: list[np.ndarray], classes: Classes) -> LabeledImages:
    """One `LabeledImages` from per-file (or per-folder) parts."""
    if not images:
        return LabeledImages(np.empty((0, *IMAGE_SHAPE), np.uint8), np.empty(0, np.int64), classes)
    return LabeledImages(np.concatenate(images), np.concatenate(labels).astype(np.int64), classes)
