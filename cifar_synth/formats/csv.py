"""One CSV of pixel columns, `csv/train.csv`: label, label_name, then r0c0_r, r0c0_g, r0c0_b, r0c1_r, …, r31c31_b.

The pixel columns follow `images.reshape(N, 3072)`: row-major over the 32×32 grid, then R, G, B per pixel.
"""

from pathlib import Path

import numpy as np

from cifar_synth.classes import Classes
from cifar_synth.errors import UserError
from cifar_synth.formats.base import Batch, Writer, concatenate, file_entry
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

CSV_FILE = "csv/train.csv"
PIXEL_COLUMNS = tuple(
    f"r{row}c{col}_{channel}" for row in range(IMAGE_SHAPE[0]) for col in range(IMAGE_SHAPE[1]) for channel in "rgb"
)
COLUMNS = ("label", "label_name", *PIXEL_COLUMNS)
_READ_CHUNK_ROWS = 5_000

# CSV cells as bytes, right-aligned in 4 bytes with NUL padding: "7," -> b"\0\07,". NULs are dropped after joining.
_CELLS = np.zeros((256, 4), np.uint8)
for _value in range(256):
    _cell = f"{_value},".encode()
    _CELLS[_value, 4 - len(_cell):] = np.frombuffer(_cell, np.uint8)


def csv_rows(images: np.ndarray, prefix: bytes) -> bytes:
    """CSV lines `prefix` + the 3072 pixel values of each uint8 image, in `images.reshape(N, 3072)` order."""
    cells = _CELLS[images.reshape(len(images), -1)].reshape(len(images), -1)
    lines = np.concatenate([np.broadcast_to(np.frombuffer(prefix, np.uint8), (len(images), len(prefix))), cells],
                           axis=1)
    lines[:, -1] = ord("\n")  # the last cell's comma; cells are right-aligned, so it is always the last byte
    return lines[lines != 0].tobytes()


class CsvWriter(Writer):
    """Header once, then each batch formatted by a vectorised lookup table."""

    needs_png = False

    def __init__(self, root: Path, total_rows: int, classes: Classes):
        super().__init__(root, total_rows, classes)
        self.path = root / CSV_FILE
        self.path.parent.mkdir()
        self.file = open(self.path, "wb")
        self.file.write((",".join(COLUMNS) + "\n").encode())

    def write(self, batch: Batch) -> None:
        self.file.write(csv_rows(batch.images, f"{batch.label},{_cell(batch.class_name)},".encode()))

    def finish(self) -> list[dict]:
        self.close()
        return [file_entry(self.root, self.path, "csv", self.total_rows)]

    def close(self) -> None:
        self.file.close()


def find(path: Path) -> list[Path]:
    """The `*.csv` files at `path`, else in its `csv/`."""
    return sorted(path.glob("*.csv")) or sorted((path / CSV_FILE).parent.glob("*.csv"))


def _cell(text: str) -> str:
    """A CSV cell holding `text`, quoted when a comma or a quote in it would otherwise split or end it."""
    return '"' + text.replace('"', '""') + '"' if any(character in text for character in ',"\n') else text


def read(files: list[Path], classes: Classes) -> LabeledImages:
    """Our CSV, or other tools' with a `label` column (`label_name` optional, checked) and 3072 pixel columns."""
    import pandas as pd  # here: the real-data loader imports this package, and only this function needs pandas

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
                    _check_label_names(file, chunk_labels, chunk["label_name"].to_numpy(), classes)
                labels.append(chunk_labels)
                images.append(chunk[pixels].to_numpy().reshape(-1, *IMAGE_SHAPE))
        except ValueError as error:  # pandas' parse errors: non-integers, values outside 0–255, missing cells
            raise UserError(f"{file}: {error}") from None
    return concatenate(images, labels, classes)


def _check_label_names(file: Path, labels: np.ndarray, names: np.ndarray, classes: Classes) -> None:
    valid = (labels >= 0) & (labels < len(classes))
    expected = np.asarray(classes.names)[np.where(valid, labels, 0)]
    wrong = np.flatnonzero(valid & (expected != names))
    if wrong.size:
        row = wrong[0]
        raise UserError(
            f"{file}: label {labels[row]} has label_name {str(names[row])!r}, expected {str(expected[row])!r}")
