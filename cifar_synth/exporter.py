"""`cifar-synth export`: sample each class's trained generator into a labeled dataset, safely and at full speed.

The export root is a Hugging Face dataset repository: a dataset card (README.md, `cifar_synth.card`), a sample sheet,
`manifest.json` and the data files of each format (`cifar_synth.formats`). Images are generated in batches on the
main thread while worker processes PNG-encode the previous batch, so both cores work and memory does not grow with
`--count`. With `filter_by="classifier"` each batch is a batch of candidates, of which only those a real-trained CNN
recognises as their class are kept.

Everything is written into a hidden staging folder beside the target, under the target's lock, and swapped into
place only when whole (see `_swap_into_place`); staging folders that a killed export left behind are removed by the
next export to the same target.
"""

import base64
import contextlib
import ctypes
import errno
import functools
import glob
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cifar_synth.baseline_cache import the_cached_cnn_classifier
from cifar_synth.classes import CLASS_NAMES, parse_class_names
from cifar_synth.errors import UserError
from cifar_synth.files import make_temp_dir, sha256_file
from cifar_synth.formats import FORMATS, Batch, Writer
from cifar_synth.formats.csv import CsvWriter
from cifar_synth.formats.images import ImagesWriter, encode_pngs
from cifar_synth.formats.parquet import ParquetWriter
from cifar_synth.images import IMAGE_SHAPE, to_uint8
from cifar_synth.locks import hold
from cifar_synth.provenance import package_versions
from cifar_synth.saved_models import load_model
from cifar_synth.reporter import Reporter
from cifar_synth.synthetic import FORMAT_VERSION, MANIFEST

GENERATOR_FILE = "generator.keras"
RUN_CONFIG_FILE = "config.json"
DEFAULT_BATCH_SIZE = 2048  # large batches run the generator near its FLOP bound (docs/benchmarks.md)
SAMPLES_PER_CLASS = 10  # images of each class in the sample sheet
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
_WRITERS: dict[str, type[Writer]] = {"parquet": ParquetWriter, "images": ImagesWriter, "csv": CsvWriter}
# PNG encoding runs in this many processes, each batch split between them; the generator uses the cores meanwhile.
_ENCODERS = 2
_BATCHES_IN_FLIGHT = 2  # generated batches waiting for their PNGs: bounds memory, keeps the encoders fed


@dataclass(frozen=True)
class ExportOptions:
    """Everything `export_dataset` needs; `validated()` checks it (the one place) and fills in the defaults.

    `out` defaults to `datasets/synthetic/<name>`, and `name` to `<runs dir name>-seed<seed>`, plus
    `-filter<min_confidence>` when filtering. With `filter_by="classifier"`, only candidates that the Keras
    classifier at `classifier` (default: the evaluator's cached real-trained one) recognises as their class with
    probability at least `min_confidence` (default 0.5) are kept; see `FILTER_RULE`.
    """

    runs_dir: Path = Path("runs")
    classes: tuple[str, ...] | None = None  # None: every class with a trained generator
    count: int = 5000  # images per class
    formats: tuple[str, ...] = ("parquet",)
    out: Path | None = None
    name: str | None = None
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    overwrite: bool = False
    filter_by: str = "none"
    classifier: Path | None = None
    min_confidence: float | None = None

    def validated(self) -> "ExportOptions":
        """These options checked, with `formats` normalised and `min_confidence` and `out` filled in."""
        if self.count < 1:
            raise UserError(f"--count must be at least 1, got {self.count}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")
        formats = tuple(dict.fromkeys(fmt.strip().lower() for fmt in self.formats or ("parquet",)))
        unknown = [fmt for fmt in formats if fmt not in FORMATS]
        if unknown:
            raise UserError(f"unknown format {', '.join(map(repr, unknown))}; valid formats: {', '.join(FORMATS)}")
        min_confidence = self._checked_min_confidence()
        runs_dir = Path(self.runs_dir)
        out = self.out
        if out is None:
            suffix = f"-filter{min_confidence:g}" if self.filter_by == "classifier" else ""
            out = Path("datasets/synthetic") / (self.name or f"{runs_dir.resolve().name}-seed{self.seed}{suffix}")
        return replace(self, runs_dir=runs_dir, formats=formats, min_confidence=min_confidence, out=Path(out),
                       classifier=None if self.classifier is None else Path(self.classifier))

    def _checked_min_confidence(self) -> float | None:
        """The minimum confidence to use (None without a filter)."""
        if self.filter_by not in FILTERS:
            raise UserError(f"unknown filter {self.filter_by!r}; valid filters: {', '.join(FILTERS)}")
        if self.filter_by == "none":
            # Refused rather than ignored: an export the user believes filtered must not silently be unfiltered.
            given = [option for option, value in (("--classifier", self.classifier),
                                                  ("--min-confidence", self.min_confidence)) if value is not None]
            if given:
                raise UserError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --filter classifier")
            return None
        if self.classifier is not None and not Path(self.classifier).is_file():
            raise UserError(f"classifier {self.classifier} does not exist")
        if self.min_confidence is None:
            return DEFAULT_MIN_CONFIDENCE
        if not 0 <= self.min_confidence <= 1:
            raise UserError(f"--min-confidence must be between 0 and 1, got {self.min_confidence}")
        return self.min_confidence


@dataclass(frozen=True)
class ExportResult:
    """Where the export landed and its manifest (also written as manifest.json)."""

    path: Path
    manifest: dict


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
        self.sha256 = sha256_file(path)
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


def accepted_candidates(class_entry: dict) -> np.ndarray:
    """Candidate (latent row) index of each image of a filtered export's manifest class entry, in image order."""
    filtered = class_entry["filter"]
    mask = np.unpackbits(np.frombuffer(base64.b64decode(filtered["accepted_mask"]), np.uint8),
                         count=filtered["candidates"])
    return np.flatnonzero(mask)


def trained_classes(runs_dir: Path) -> list[str]:
    """Classes, in label order, that have `runs_dir/<class>/generator.keras`."""
    return [name for name in CLASS_NAMES if (Path(runs_dir) / name / GENERATOR_FILE).is_file()]


def first_images(runs_dir: Path, class_name: str, count: int, seed: int = 0) -> np.ndarray:
    """The first `count` images an unfiltered export with `seed` holds for the class (uint8)."""
    path = Path(runs_dir) / class_name / GENERATOR_FILE
    generator, latent_dim = _load_generator(path)
    latents = next(_latent_batches(seed, CLASS_NAMES.index(class_name), count, latent_dim, count))
    return _generate(generator, latents, path)


def export_dataset(options: ExportOptions = ExportOptions(), reporter: Reporter | None = None) -> ExportResult:
    """Write `options.count` images of each class to `options.out` in each format, with its card and manifest.

    Progress goes to `reporter`, and as warnings what killed exports left behind and this one cleared up.
    """
    from cifar_synth.card import write_card

    options = options.validated()
    reporter = reporter or Reporter()
    classes = _resolve_classes(options.runs_dir, options.classes)
    out = options.out
    with hold(out, "export target"):
        _clear_leftovers(out, reporter)
        _check_target(out, options.overwrite)
        image_filter = _make_filter(options, classes)
        staging = make_temp_dir(out.parent, _staging_prefix(out))
        try:
            try:
                manifest, samples = _write(staging, out.name, classes, options, image_filter, reporter)
                write_card(staging, manifest, samples)
                (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # last: marks it whole
                _swap_into_place(staging, out)
            except OSError as error:  # disk full, read-only file system: the user's to fix
                raise UserError(f"writing {out} failed: {error.strerror or error} "
                                f"({error.filename or staging}); {_kept(out, options.overwrite)}") from None
        except BaseException:  # including Ctrl-C: leave neither a partial target nor the staging folder
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ExportResult(out, manifest)


def _kept(out: Path, overwrite: bool) -> str:
    return f"the existing export at {out} is unchanged" if overwrite and out.exists() else "nothing was written"


def _resolve_classes(runs_dir: Path, requested) -> list[str]:
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


def _make_filter(options: ExportOptions, classes: list[str]) -> ClassifierFilter | None:
    if options.filter_by != "classifier":
        return None
    cached = options.classifier is None
    classifier = the_cached_cnn_classifier(_trained_on(options.runs_dir, classes)) if cached else options.classifier
    return ClassifierFilter(classifier, options.min_confidence, from_evaluator_cache=cached)


def _trained_on(runs_dir: Path, classes: list[str]) -> str:
    """The sha256 of the real data the classes' generators trained on (their config.json), for the cached filter."""
    found = {(_read_run_config(runs_dir / name / RUN_CONFIG_FILE) or {}).get("data", {}).get("sha256")
             for name in classes}
    if len(found) != 1 or None in found:
        raise UserError(f"cannot tell which real data the generators in {runs_dir} trained on (their config.json "
                        "records none, or several), so not which cached classifier fits them; pass --classifier")
    return found.pop()


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


# --- the swap, and what a killed export leaves behind --------------------------------------------------------------

def _staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


def _aside_prefix(out: Path) -> str:
    return f".{out.name}.old-"


def _beside(out: Path, prefix: str) -> list[Path]:
    return list(out.parent.glob(glob.escape(prefix) + "*"))


def _swap_into_place(staging: Path, out: Path) -> None:
    """Make the whole export in `staging` the one at `out`; at no instant is `out` partial or both exports lost.

    Where the system can exchange two directories atomically (Linux renameat2), `out` always holds one whole
    export, and after the exchange `staging` holds the old one until it is deleted. Elsewhere the old export is
    renamed aside first: a kill between the two renames leaves `out` missing and the old export whole beside it,
    which the next export puts back (`_clear_leftovers`).
    """
    if not out.exists():
        os.rename(staging, out)
    elif _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # the new export is in place; the next export removes what stays
    else:
        aside = out.parent / (_aside_prefix(out) + staging.name[len(_staging_prefix(out)):])
        os.rename(out, aside)
        try:
            os.rename(staging, out)
        except BaseException:
            os.rename(aside, out)
            raise
        shutil.rmtree(aside, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # not glibc ≥ 2.28: macOS, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a kernel or file system without the exchange
        return False
    raise OSError(code, os.strerror(code), str(second))


def _clear_leftovers(out: Path, reporter: Reporter) -> None:
    """Undo what killed exports to `out` left beside it. Called under `out`'s lock, so their writers are gone.

    An export set aside by an interrupted swap comes back when `out` is missing; staging folders (partial exports,
    or an old one swapped out but not yet deleted) are removed, saying how much space that frees.
    """
    asides = sorted(_beside(out, _aside_prefix(out)), key=lambda path: path.stat().st_mtime)
    if asides and not out.exists() and (asides[-1] / MANIFEST).is_file():
        os.rename(asides.pop(), out)
        reporter.warn(f"restored the previous export at {out}: an earlier --overwrite was killed while swapping it")
    for leftover in [*asides, *_beside(out, _staging_prefix(out))]:
        size = sum(file.stat().st_size for file in leftover.rglob("*") if file.is_file())
        shutil.rmtree(leftover, ignore_errors=True)
        if leftover.exists():
            reporter.warn(f"could not remove {leftover}, left by a killed export; delete it")
        else:
            reporter.warn(f"removed {leftover} ({size / 1e6:.1f} MB), left by a killed export")


# --- generating, encoding and writing -------------------------------------------------------------------------------

def _write(staging: Path, name: str, classes: list[str], options: ExportOptions,
           image_filter: ClassifierFilter | None, reporter: Reporter) -> tuple[dict, list[np.ndarray]]:
    """Write every format into `staging`; the manifest and the first images of each class (for the sample sheet)."""
    total = options.count * len(classes)
    class_entries, samples = [], []
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(_WRITERS[fmt](staging, total)) for fmt in options.formats]
        encoders = stack.enter_context(_encoders()) if any(writer.needs_png for writer in writers) else None
        progress = stack.enter_context(_progress(reporter))
        task = progress.add_task("exporting", total=total)
        if image_filter is not None:
            reporter.info(f"Filtering with {image_filter}")
        for class_name in classes:
            label = CLASS_NAMES.index(class_name)
            generator_path = options.runs_dir / class_name / GENERATOR_FILE
            progress.update(task, description=f"loading {class_name}")
            generator, latent_dim = _load_generator(generator_path)
            progress.update(task, description=class_name)
            decisions, class_samples = [], []
            batches = _class_batches(label, generator, generator_path, latent_dim, options, image_filter, decisions)
            for batch in _encoded(batches, encoders):
                for writer in writers:
                    writer.write(batch)
                class_samples.append(batch.images[:SAMPLES_PER_CLASS])
                progress.advance(task, len(batch.names))
            del generator  # one generator in memory at a time
            class_entries.append(_class_entry(class_name, generator_path, latent_dim, options, image_filter,
                                              decisions))  # first: it fails on a class the filter left short
            samples.append(np.concatenate(class_samples)[:SAMPLES_PER_CLASS])
        files = [entry for writer in writers for entry in writer.finish()]
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "count_per_class": options.count,
        "seed": options.seed,
        "batch_size": options.batch_size,
        "latents": LATENT_RECIPE if image_filter is None else FILTERED_LATENT_RECIPE,
        "filter": {"method": "none"} if image_filter is None else image_filter.describe(),
        "classes": class_entries,
        "formats": list(options.formats),
        "files": files,
        "splits": {"train": {"num_examples": total,
                             **{"num_bytes": writer.num_bytes for writer in writers
                                if isinstance(writer, ParquetWriter)}}},
        "versions": package_versions(),
    }
    return manifest, samples


def _class_batches(label: int, generator, generator_path: Path, latent_dim: int, options: ExportOptions,
                   image_filter: ClassifierFilter | None, decisions: list[np.ndarray]) -> Iterator[Batch]:
    """The class's images in order, one generator batch at a time (kept ones only); appends each accept mask to
    `decisions`."""
    count = options.count
    # Candidates are drawn in order until `count` pass; without a filter every candidate passes.
    limit = count if image_filter is None else count * MAX_CANDIDATES_PER_IMAGE
    width = max(5, len(str(count - 1)))
    written = 0
    for latents in _latent_batches(options.seed, label, limit, latent_dim, options.batch_size):
        images = _generate(generator, latents, generator_path)
        keep = np.ones(len(images), bool) if image_filter is None else image_filter.accepts(images, label)
        kept = np.flatnonzero(keep)
        if len(kept) >= count - written:  # the class is complete: later candidates are not examined
            keep = keep[:kept[count - written - 1] + 1]
        decisions.append(keep)
        images = images[:len(keep)][keep]
        if len(images):
            names = [f"{index:0{width}d}.png" for index in range(written, written + len(images))]
            yield Batch(label, images, names, pngs=None)
            written += len(images)
        if written == count:
            return


def _encoded(batches: Iterator[Batch], encoders: ProcessPoolExecutor | None) -> Iterator[Batch]:
    """`batches` with their PNGs, in order. The next batch is generated while the encoders work on earlier ones."""
    if encoders is None:
        yield from batches
        return
    pending: deque[tuple[Batch, list[Future]]] = deque()
    for batch in batches:
        chunks = np.array_split(batch.images, min(_ENCODERS, len(batch.images)))
        pending.append((batch, [encoders.submit(encode_pngs, chunk) for chunk in chunks]))
        if len(pending) >= _BATCHES_IN_FLIGHT:
            yield _with_pngs(*pending.popleft())
    while pending:
        yield _with_pngs(*pending.popleft())


def _with_pngs(batch: Batch, futures: list[Future]) -> Batch:
    return replace(batch, pngs=[png for future in futures for png in future.result()])


@contextlib.contextmanager
def _encoders() -> Iterator[ProcessPoolExecutor]:
    """Processes that PNG-encode; spawned, not forked, since the parent runs TensorFlow's threads."""
    pool = ProcessPoolExecutor(_ENCODERS, mp_context=multiprocessing.get_context("spawn"),
                               initializer=functools.partial(_start_encoder, os.getpid()))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_encoder(parent: int) -> None:
    """Ignore Ctrl-C, which the terminal sends to the encoders too (the parent handles it and shuts them down), and
    exit once the parent is gone: a parent killed with SIGKILL cannot shut them down, and they would wait for work
    for ever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _class_entry(class_name: str, generator_path: Path, latent_dim: int, options: ExportOptions,
                 image_filter: ClassifierFilter | None, decisions: list[np.ndarray]) -> dict:
    entry = {
        "name": class_name, "label": CLASS_NAMES.index(class_name), "count": options.count, "latent_dim": latent_dim,
        "generator": {"path": str(generator_path), "sha256": sha256_file(generator_path)},
        "run_config": _read_run_config(options.runs_dir / class_name / RUN_CONFIG_FILE),
    }
    if image_filter is not None:
        entry["filter"] = _filter_entry(class_name, np.concatenate(decisions), options.count, image_filter)
    return entry


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


def _progress(reporter: Reporter) -> Progress:
    return reporter.progress(
        TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )


def _load_generator(path: Path):
    """The Keras generator at `path` and its latent size."""
    generator = load_model(path, "generator")
    shape = getattr(generator, "input_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int)):
        raise UserError(f"{path}: expected a generator with one input of shape (batch, latent_dim), got {shape}")
    return generator, shape[1]


def _latent_batches(seed: int, label: int, count: int, latent_dim: int, batch_size: int) -> Iterator[np.ndarray]:
    """The latents in batches; numpy's Generator draws sequentially, so the rows do not depend on batch_size."""
    rng = np.random.default_rng([seed, label])
    for start in range(0, count, batch_size):
        yield rng.standard_normal((min(batch_size, count - start), latent_dim), dtype=np.float32)


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
