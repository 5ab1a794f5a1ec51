"""Parquet shards where the Hugging Face Hub looks for them: `data/train-XXXXX-of-YYYYY.parquet`.

Columns `img` (struct{bytes: PNG, path: "<class>/<index>.png"}) and `label` (int64), with the schema metadata that
makes `datasets` type them as Image and ClassLabel: the layout of the Hub's cifar10. Exports of format version 1
kept the same files in `parquet/`; the reader still finds them there.
"""

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cifar_synth.classes import CIFAR10, Classes
from cifar_synth.errors import UserError
from cifar_synth.formats.base import Batch, Writer, concatenate, file_entry
from cifar_synth.formats.images import decode_image
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

DATA_DIR = "data"
LEGACY_DIR = "parquet"  # format version 1
ROWS_PER_SHARD = 25_000  # tens of MB per shard at 1.5–3 KB per PNG
ROW_GROUP_ROWS = 1_000  # fixed rather than per batch, so the Parquet bytes do not depend on --batch-size
IMG_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
_READ_CHUNK_ROWS = 5_000


def schema(classes: Classes) -> pa.Schema:
    """The shards' columns, with the metadata that types `label` as a ClassLabel of the dataset's class names."""
    return pa.schema(
        [pa.field("img", IMG_TYPE), pa.field("label", pa.int64())],
        metadata={
            b"huggingface": json.dumps(
                {"info": {"features": {
                    "img": {"_type": "Image"},
                    "label": {"_type": "ClassLabel", "names": list(classes.names)},
                }}}
            ).encode()
        },
    )


class ParquetWriter(Writer):
    """Shards of at most ROWS_PER_SHARD rows, split evenly, streamed in fixed-size row groups.

    `num_bytes` is the uncompressed size of the rows (PNG bytes, paths and labels), the dataset card's split size.
    """

    def __init__(self, root: Path, total_rows: int, classes: Classes):
        super().__init__(root, total_rows, classes)
        self.schema = schema(classes)
        self.directory = root / DATA_DIR
        self.directory.mkdir()
        self.shards = math.ceil(total_rows / ROWS_PER_SHARD)
        self.shard_rows = math.ceil(total_rows / self.shards)
        self.written: list[tuple[Path, int]] = []
        self.writer: pq.ParquetWriter | None = None
        self.pngs: list[bytes] = []
        self.paths: list[str] = []
        self.labels: list[int] = []
        self.num_bytes = 0

    def write(self, batch: Batch) -> None:
        self.pngs += batch.pngs
        self.paths += [f"{batch.class_name}/{name}" for name in batch.names]
        self.labels += [batch.label] * len(batch.names)
        while len(self.pngs) >= self._room():
            self._flush(self._room())

    def finish(self) -> list[dict]:
        while self.pngs:
            self._flush(min(self._room(), len(self.pngs)))
        self.close()
        return [file_entry(self.root, path, "parquet", rows) for path, rows in self.written]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _room(self) -> int:
        """Rows for the next row group: a full group, or what the current shard still takes."""
        in_shard = self.written[-1][1] if self.writer is not None else 0
        return min(ROW_GROUP_ROWS, self.shard_rows - in_shard)

    def _flush(self, rows: int) -> None:
        if self.writer is None:
            path = self.directory / f"train-{len(self.written):05d}-of-{self.shards:05d}.parquet"
            self.writer = pq.ParquetWriter(path, self.schema)
            self.written.append((path, 0))
        pngs, paths = pa.array(self.pngs[:rows], pa.binary()), pa.array(self.paths[:rows], pa.string())
        img = pa.StructArray.from_arrays([pngs, paths], fields=[IMG_TYPE.field(0), IMG_TYPE.field(1)])
        self.writer.write_table(pa.Table.from_arrays([img, pa.array(self.labels[:rows], pa.int64())],
                                                     schema=self.schema))
        self.num_bytes += pngs.nbytes + paths.nbytes + 8 * rows
        del self.pngs[:rows], self.paths[:rows], self.labels[:rows]
        path, done = self.written[-1]
        self.written[-1] = (path, done + rows)
        if done + rows == self.shard_rows:
            self.close()


def find(path: Path) -> list[Path]:
    """The `*.parquet` files at `path`, else in its `data/` (the Hub's place), else in `parquet/` (version 1)."""
    for directory in (path, path / DATA_DIR, path / LEGACY_DIR):
        files = sorted(directory.glob("*.parquet"))
        if files:
            return files
    return []


def classes_of(files: list[Path]) -> Classes:
    """The classes the first file's `ClassLabel` metadata names (as our shards and the Hub's carry them); CIFAR-10's
    when it names none."""
    try:
        metadata = pq.read_schema(files[0]).metadata or {}
        names = json.loads(metadata[b"huggingface"])["info"]["features"]["label"]["names"]
    except (KeyError, TypeError, ValueError, OSError, pa.ArrowException):  # an unreadable file: `read` says so
        return CIFAR10
    if tuple(names) == CIFAR10.names:
        return CIFAR10
    return Classes.checked(f"the ClassLabel of {files[0].name}", names, str(files[0]))


def read(files: list[Path], classes: Classes) -> LabeledImages:
    """Our shards, or other tools' Parquet with an `img` or `image` column of image bytes and a `label` column."""
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
                if data is None:
                    raise UserError(f"{file} row {row}: no embedded image bytes")
                file_images[row] = decode_image(data, f"{file} row {row}")
                row += 1
            if batch.column("label").null_count:
                raise UserError(f"{file}: the label column has missing values")
            labels.append(batch.column("label").to_numpy(zero_copy_only=False).astype(np.int64))
        images.append(file_images)
    return concatenate(images, labels, classes)
