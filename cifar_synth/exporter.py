"""`cifar-synth export`: sample each class's trained generator into a labeled dataset, atomically and in bounded memory.

Images are generated, encoded and written one batch at a time, so memory does not grow with `--count`. Everything is
written into a hidden staging directory beside the target and renamed into place only when complete. With
`filter_by="classifier"` each batch is a batch of candidates, of which only those a real-trained CNN recognises as their
class are kept.
"""

import base64
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import cifar_synth
from cifar_synth.baseline_cache import CLASSIFIER_FILE as _CACHED_CLASSIFIER, METRICS_FILE as _CACHED_METRICS
from cifar_synth.classes import CLASS_NAMES, parse_class_names
from cifar_synth.errors import UserError
from cifar_synth.images import IMAGE_SHAPE, to_uint8
from cifar_synth.synthetic import (
    CSV_COLUMNS, CSV_FILE, FORMAT_VERSION, FORMATS, IMAGES_DIR, MANIFEST, PARQUET_DIR, PARQUET_SCHEMA, encode_png,
)

GENERATOR_FILE = "generator.keras"
RUN_CONFIG_FILE = "config.json"
ROWS_PER_SHARD = 25_000  # tens of MB per Parquet shard at 1.5–3 KB per PNG
ROW_GROUP_ROWS = 1_000  # fixed rather than per batch, so the Parquet bytes do not depend on --batch-size
LATENT_RECIPE = (
    "latents of class `label` = numpy.random.default_rng([seed, label]).standard_normal((count, latent_dim), "
    "dtype=numpy.float32); row i gives image i (drawn in batches, which yields the same rows for any batch size)"
)
FILTERED_LATENT_RECIPE = (
    "candidate latents of class `label` = numpy.random.default_rng([seed, label]).standard_normal((candidates, "
    "latent_dim), dtype=numpy.float32), with `candidates` from the class's filter entry; image k is the candidate at "
    "the k-th True of numpy.unpackbits(numpy.frombuffer(base64.b64decode(accepted_mask), numpy.uint8), "
    "count=candidates), i.e. cifar_synth.exporter.accepted_candidates(class entry)[k]"
)
FILTERS = ("none", "classifier")
DEFAULT_MIN_CONFIDENCE = 0.5
MAX_CANDIDATES_PER_IMAGE = 50  # a class whose generator the classifier rarely recognises fails instead of running on
FILTER_RULE = (
    "a candidate is kept when the classifier's most probable class is the class it was generated for and that "
    "probability is at least min_confidence; probabilities are the softmax of the logits averaged over the image and "
    "its mirror image (cifar_synth.classifier.make_predictor with test_time_flip)"
)

# CSV cells as bytes, right-aligned in 4 bytes with NUL padding: "7," -> b"\0\07,". NULs are dropped after joining.
_CSV_CELLS = np.zeros((256, 4), np.uint8)
for _value in range(256):
    _cell = f"{_value},".encode()
    _CSV_CELLS[_value, 4 - len(_cell):] = np.frombuffer(_cell, np.uint8)


@dataclass(frozen=True)
class ExportResult:
    """Where the export landed and its manifest (also written as manifest.json)."""

    path: Path
    manifest: dict


@dataclass(frozen=True)
class _Batch:
    """Consecutive images `start…` of one class; `pngs` is set when a format needs them."""

    label: int
    start: int
    images: np.ndarray
    names: list[str]
    pngs: list[bytes] | None

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


class ClassifierFilter:
    """Keeps the images a classifier built like the evaluator's recognises as their class with enough confidence.

    The classifier takes float pixels 0–255 of shape (N, 32, 32, 3) (it normalises inside), outputs 10 logits and has
    a layer named `features`, as `cifar_synth.classifier.build_classifier` makes it.
    """

    def __init__(self, path: Path, min_confidence: float, from_evaluator_cache: bool = False):
        from cifar_synth.classifier import load_classifier, make_predictor

        self.path = path
        self.min_confidence = min_confidence
        self.from_evaluator_cache = from_evaluator_cache
        self.model = load_classifier(path)
        self.sha256 = _sha256_file(path)
        self.predict = make_predictor(self.model, test_time_flip=True)

    def accepts(self, images: np.ndarray, label: int) -> np.ndarray:
        """Boolean mask of the uint8 `images` of class `label` to keep."""
        probabilities, _ = self.predict(images)
        return (probabilities.argmax(1) == label) & (probabilities[:, label] >= self.min_confidence)

    def __str__(self) -> str:
        source = "the evaluator's cached real-trained classifier" if self.from_evaluator_cache else "classifier"
        return f"{source} {self.path}, min confidence {self.min_confidence:g}"

    def describe(self) -> dict:
        return {"method": "classifier", "rule": FILTER_RULE, "min_confidence": self.min_confidence,
                "test_time_flip": True, "max_candidates_per_image": MAX_CANDIDATES_PER_IMAGE,
                "classifier": {"path": str(self.path.resolve()), "sha256": self.sha256,
                               "from_evaluator_cache": self.from_evaluator_cache}}


def find_cached_classifier(cache_dir: str | Path | None = None) -> Path:
    """The evaluator's cached real-trained classifier (default cache: the evaluator's), if exactly one is cached."""
    from cifar_synth.baseline_cache import default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    found = sorted(path for path in cache_dir.glob(f"*/{_CACHED_CLASSIFIER}")
                   if (path.parent / _CACHED_METRICS).is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"no real-trained classifier is cached in {cache_dir}: run `cifar-synth evaluate` first "
                        "(it caches one) or pass the classifier's path")
    raise UserError(f"{len(found)} cached real-trained classifiers in {cache_dir} "
                    f"({', '.join(str(path) for path in found)}); pass the path of one")


def accepted_candidates(class_entry: dict) -> np.ndarray:
    """Candidate (latent row) index of each image of a filtered export's manifest class entry, in image order."""
    filtered = class_entry["filter"]
    mask = np.unpackbits(np.frombuffer(base64.b64decode(filtered["accepted_mask"]), np.uint8),
                         count=filtered["candidates"])
    return np.flatnonzero(mask)


def trained_classes(runs_dir: Path) -> list[str]:
    """Classes, in label order, that have `runs_dir/<class>/generator.keras`."""
    return [name for name in CLASS_NAMES if (Path(runs_dir) / name / GENERATOR_FILE).is_file()]


def export_dataset(
    runs_dir: str | Path = "runs",
    classes: Sequence[str] | None = None,
    count: int = 5000,
    formats: Sequence[str] | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    seed: int = 0,
    batch_size: int = 256,
    overwrite: bool = False,
    show_progress: bool = True,
    filter_by: str = "none",
    classifier: str | Path | None = None,
    min_confidence: float | None = None,
) -> ExportResult:
    """Write `count` images of each class (default: every trained one) to `out` in each format.

    `out` defaults to `datasets/synthetic/<name>`, and `name` to `<runs dir name>-seed<seed>`, plus
    `-filter<min_confidence>` when filtering. With `filter_by="classifier"`, only candidates that the Keras
    classifier at `classifier` (default: the evaluator's cached real-trained one) recognises as their class with
    probability at least `min_confidence` (default 0.5) are kept; see `FILTER_RULE`.
    """
    runs_dir = Path(runs_dir)
    formats = _check_options(count, batch_size, seed, formats)
    min_confidence = _check_filter_options(filter_by, classifier, min_confidence)
    classes = _resolve_classes(runs_dir, classes)
    if out is None:
        suffix = f"-filter{min_confidence:g}" if filter_by == "classifier" else ""
        out = Path("datasets/synthetic") / (name or f"{runs_dir.resolve().name}-seed{seed}{suffix}")
    out = Path(out)
    _check_target(out, overwrite)
    image_filter = None
    if filter_by == "classifier":
        cached = classifier is None
        image_filter = ClassifierFilter(find_cached_classifier() if cached else Path(classifier), min_confidence,
                                        from_evaluator_cache=cached)
    staging = _make_staging(out)
    try:
        try:
            manifest = _write(staging, out.name, runs_dir, classes, count, formats, seed, batch_size, image_filter,
                              show_progress)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            _move_into_place(staging, out)
        except OSError as error:  # disk full, permissions: the user's to fix
            raise UserError(f"writing {out} failed: {error}") from None
    except BaseException:  # including Ctrl-C: leave neither a partial target nor the staging directory
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(out, manifest)


def _check_options(count: int, batch_size: int, seed: int, formats: Sequence[str] | None) -> list[str]:
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    wanted = list(dict.fromkeys(fmt.strip().lower() for fmt in formats or ["parquet"]))
    unknown = [fmt for fmt in wanted if fmt not in FORMATS]
    if unknown:
        raise UserError(f"unknown format {', '.join(map(repr, unknown))}; valid formats: {', '.join(FORMATS)}")
    return wanted


def _check_filter_options(filter_by: str, classifier: str | Path | None,
                          min_confidence: float | None) -> float | None:
    """The minimum confidence to use (None without a filter)."""
    if filter_by not in FILTERS:
        raise UserError(f"unknown filter {filter_by!r}; valid filters: {', '.join(FILTERS)}")
    if filter_by == "none":
        # Refused rather than ignored: an export the user believes filtered must not silently be unfiltered.
        given = [option for option, value in (("--classifier", classifier), ("--min-confidence", min_confidence))
                 if value is not None]
        if given:
            raise UserError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --filter classifier")
        return None
    if classifier is not None and not Path(classifier).is_file():
        raise UserError(f"classifier {classifier} does not exist")
    if min_confidence is None:
        return DEFAULT_MIN_CONFIDENCE
    if not 0 <= min_confidence <= 1:
        raise UserError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    return min_confidence


def _resolve_classes(runs_dir: Path, requested: Sequence[str] | None) -> list[str]:
    if not requested:
        classes = trained_classes(runs_dir)
        if not classes:
            raise UserError(
                f"no trained generators in {runs_dir} (looked for {runs_dir / '<class>' / GENERATOR_FILE}); "
                "train one with `cifar-synth train` or pass --runs"
            )
        return classes
    classes = parse_class_names(list(requested))
    missing = [name for name in classes if not (runs_dir / name / GENERATOR_FILE).is_file()]
    if missing:
        paths = ", ".join(str(runs_dir / name / GENERATOR_FILE) for name in missing)
        raise UserError(f"no trained generator for {', '.join(missing)}: {paths} not found")
    return classes


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    if not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    # --overwrite deletes the old directory: only ever one this command wrote (or an empty one).
    if not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise UserError(f"refusing to replace {out}: it is not a cifar-synth export (no {MANIFEST})")


def _make_staging(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as error:
        raise UserError(f"cannot write to {out.parent}: {error.strerror or error}") from None


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, aside / out.name)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(aside / out.name, out)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _write(staging: Path, name: str, runs_dir: Path, classes: list[str], count: int, formats: list[str], seed: int,
           batch_size: int, image_filter: ClassifierFilter | None, show_progress: bool) -> dict:
    total = count * len(classes)
    # Candidates are drawn in order until `count` pass; without a filter every candidate passes.
    limit = count if image_filter is None else count * MAX_CANDIDATES_PER_IMAGE
    needs_png = "parquet" in formats or "images" in formats
    width = max(5, len(str(count - 1)))
    class_entries = []
    with ExitStack() as stack:
        sinks = [stack.enter_context(_SINKS[fmt](staging, total)) for fmt in formats]
        progress = stack.enter_context(_progress(show_progress))
        task = progress.add_task("exporting", total=total)
        if image_filter is not None and show_progress:
            progress.console.print(f"Filtering with {image_filter}", highlight=False)
        for class_name in classes:
            label = CLASS_NAMES.index(class_name)
            generator_path = runs_dir / class_name / GENERATOR_FILE
            progress.update(task, description=f"loading {class_name}")
            generator, latent_dim = _load_generator(generator_path)
            progress.update(task, description=class_name)
            written, decisions = 0, []
            for _, latents in _latent_batches(seed, label, limit, latent_dim, batch_size):
                images = _generate(generator, latents, generator_path)
                keep = np.ones(len(images), bool) if image_filter is None else image_filter.accepts(images, label)
                kept = np.flatnonzero(keep)
                if len(kept) >= count - written:  # the class is complete: later candidates are not examined
                    keep = keep[:kept[count - written - 1] + 1]
                decisions.append(keep)
                images = images[:len(keep)][keep]
                if len(images):
                    batch = _Batch(
                        label, written, images,
                        names=[f"{index:0{width}d}.png" for index in range(written, written + len(images))],
                        pngs=[encode_png(image) for image in images] if needs_png else None,
                    )
                    for sink in sinks:
                        sink.write(batch)
                    written += len(images)
                    progress.advance(task, len(images))
                if written == count:
                    break
            del generator  # one generator in memory at a time
            entry = {
                "name": class_name, "label": label, "count": count, "latent_dim": latent_dim,
                "generator": {"path": str(generator_path), "sha256": _sha256_file(generator_path)},
                "run_config": _read_run_config(runs_dir / class_name / RUN_CONFIG_FILE),
            }
            if image_filter is not None:
                entry["filter"] = _filter_entry(class_name, np.concatenate(decisions), count, image_filter)
            class_entries.append(entry)
        files = [entry for sink in sinks for entry in sink.finish()]
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "count_per_class": count,
        "seed": seed,
        "batch_size": batch_size,
        "latents": LATENT_RECIPE if image_filter is None else FILTERED_LATENT_RECIPE,
        "filter": {"method": "none"} if image_filter is None else image_filter.describe(),
        "classes": class_entries,
        "formats": formats,
        "files": files,
        "versions": _versions(),
    }


def _filter_entry(class_name: str, decisions: np.ndarray, count: int, image_filter: ClassifierFilter) -> dict:
    """The class's filter statistics and accepted-candidate mask; an error if the candidate cap stopped it short."""
    accepted, candidates = int(decisions.sum()), len(decisions)
    if accepted < count:
        raise UserError(
            f"{class_name}: the classifier accepted only {accepted} of {candidates:,} candidates "
            f"({accepted / candidates:.1%}) at --min-confidence {image_filter.min_confidence:g}, short of --count "
            f"{count} within the cap of {MAX_CANDIDATES_PER_IMAGE} candidates per image; lower --min-confidence or "
            f"--count, or train this class's generator further")
    return {"candidates": candidates, "accepted": accepted, "acceptance_rate": accepted / candidates,
            "rejection_rate": 1 - accepted / candidates,
            "accepted_mask": base64.b64encode(np.packbits(decisions).tobytes()).decode()}


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not show,
    )


def _load_model(path: Path, what: str):
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a corrupt or foreign file
        raise UserError(f"cannot load {what} {path}: {error}") from None


def _load_generator(path: Path):
    """The Keras generator at `path` and its latent size."""
    generator = _load_model(path, "generator")
    shape = getattr(generator, "input_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int)):
        raise UserError(f"{path}: expected a generator with one input of shape (batch, latent_dim), got {shape}")
    return generator, shape[1]


def _latent_batches(seed: int, label: int, count: int, latent_dim: int,
                    batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, latents) in order; numpy's Generator draws sequentially, so the rows do not depend on batch_size."""
    rng = np.random.default_rng([seed, label])
    for start in range(0, count, batch_size):
        yield start, rng.standard_normal((min(batch_size, count - start), latent_dim), dtype=np.float32)


def _generate(generator, latents: np.ndarray, path: Path) -> np.ndarray:
    output = np.asarray(generator(latents, training=False))
    if output.shape[1:] != IMAGE_SHAPE:
        raise UserError(f"{path}: generator output has shape {output.shape[1:]}, expected {IMAGE_SHAPE}")
    return to_uint8(output)


def _read_run_config(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not valid JSON: {error}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(staging: Path, path: Path, fmt: str, rows: int) -> dict:
    return {"path": path.relative_to(staging).as_posix(), "format": fmt, "rows": rows, "files": 1,
            "bytes": path.stat().st_size, "sha256": _sha256_file(path)}


def _versions() -> dict:
    import keras
    import PIL
    import tensorflow as tf

    return {"cifar_synth": cifar_synth.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "pyarrow": pa.__version__, "pillow": PIL.__version__,
            "python": platform.python_version()}


class _Sink:
    """One output format: `write` each batch in order, then `finish` for the manifest's file entries."""

    def __init__(self, staging: Path, total_rows: int):
        self.staging = staging
        self.total_rows = total_rows

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, batch: _Batch) -> None:
        raise NotImplementedError

    def finish(self) -> list[dict]:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (also on failure, when the staging directory is about to be deleted)."""


class _ParquetSink(_Sink):
    """Shards `train-XXXXX-of-YYYYY.parquet` of at most ROWS_PER_SHARD rows, streamed in fixed-size row groups."""

    def __init__(self, staging: Path, total_rows: int):
        super().__init__(staging, total_rows)
        self.directory = staging / PARQUET_DIR
        self.directory.mkdir()
        self.shards = math.ceil(total_rows / ROWS_PER_SHARD)
        self.shard_rows = math.ceil(total_rows / self.shards)  # balanced shards
        self.written: list[tuple[Path, int]] = []
        self.writer: pq.ParquetWriter | None = None
        self.pngs: list[bytes] = []
        self.paths: list[str] = []
        self.labels: list[int] = []

    def write(self, batch: _Batch) -> None:
        self.pngs += batch.pngs
        self.paths += [f"{batch.class_name}/{name}" for name in batch.names]
        self.labels += [batch.label] * len(batch.names)
        while len(self.pngs) >= self._room():
            self._flush(self._room())

    def finish(self) -> list[dict]:
        while self.pngs:
            self._flush(min(self._room(), len(self.pngs)))
        self.close()
        return [_file_entry(self.staging, path, "parquet", rows) for path, rows in self.written]

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
            self.writer = pq.ParquetWriter(path, PARQUET_SCHEMA)
            self.written.append((path, 0))
        img_type = PARQUET_SCHEMA.field("img").type
        img = pa.StructArray.from_arrays(
            [pa.array(self.pngs[:rows], pa.binary()), pa.array(self.paths[:rows], pa.string())],
            fields=[img_type.field(0), img_type.field(1)],
        )
        self.writer.write_table(pa.Table.from_arrays([img, pa.array(self.labels[:rows], pa.int64())],
                                                     schema=PARQUET_SCHEMA))
        del self.pngs[:rows], self.paths[:rows], self.labels[:rows]
        path, done = self.written[-1]
        self.written[-1] = (path, done + rows)
        if done + rows == self.shard_rows:
            self.close()


class _CsvSink(_Sink):
    """One `csv/train.csv`: header once, then each batch formatted by a vectorised lookup table."""

    def __init__(self, staging: Path, total_rows: int):
        super().__init__(staging, total_rows)
        self.path = staging / CSV_FILE
        self.path.parent.mkdir()
        self.file = open(self.path, "wb")
        self.file.write((",".join(CSV_COLUMNS) + "\n").encode())

    def write(self, batch: _Batch) -> None:
        self.file.write(csv_rows(batch.images, f"{batch.label},{batch.class_name},".encode()))

    def finish(self) -> list[dict]:
        self.close()
        return [_file_entry(self.staging, self.path, "csv", self.total_rows)]

    def close(self) -> None:
        self.file.close()


def csv_rows(images: np.ndarray, prefix: bytes) -> bytes:
    """CSV lines `prefix` + the 3072 pixel values of each uint8 image, in `images.reshape(N, 3072)` order."""
    cells = _CSV_CELLS[images.reshape(len(images), -1)].reshape(len(images), -1)
    lines = np.concatenate([np.broadcast_to(np.frombuffer(prefix, np.uint8), (len(images), len(prefix))), cells],
                           axis=1)
    lines[:, -1] = ord("\n")  # the last cell's comma; cells are right-aligned, so it is always the last byte
    return lines[lines != 0].tobytes()


class _ImagesSink(_Sink):
    """`images/<class>/<index>.png`; each class folder is one manifest entry whose sha256 covers names and bytes."""

    def __init__(self, staging: Path, total_rows: int):
        super().__init__(staging, total_rows)
        self.directory = staging / IMAGES_DIR
        self.directory.mkdir()
        self.folders: dict[str, dict] = {}

    def write(self, batch: _Batch) -> None:
        folder = self.directory / batch.class_name
        if batch.class_name not in self.folders:
            folder.mkdir()
            self.folders[batch.class_name] = {"digest": hashlib.sha256(), "rows": 0, "bytes": 0}
        entry = self.folders[batch.class_name]
        for name, png in zip(batch.names, batch.pngs):
            (folder / name).write_bytes(png)
            entry["digest"].update(name.encode() + b"\0" + png)
            entry["rows"] += 1
            entry["bytes"] += len(png)

    def finish(self) -> list[dict]:
        return [
            {"path": f"{IMAGES_DIR}/{name}", "format": "images", "rows": entry["rows"], "files": entry["rows"],
             "bytes": entry["bytes"], "sha256": entry["digest"].hexdigest()}
            for name, entry in self.folders.items()
        ]


_SINKS = {"parquet": _ParquetSink, "csv": _CsvSink, "images": _ImagesSink}
