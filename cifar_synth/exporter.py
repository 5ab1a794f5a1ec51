"""`cifar-synth export`: sample each class's trained generator into a labeled dataset, safely and at full speed.

The export root is a Hugging Face dataset repository: a dataset card (README.md, `cifar_synth.card`), a sample sheet,
`manifest.json` and the data files of each format (`cifar_synth.formats`). Images are generated in batches on the
main thread while worker processes PNG-encode the previous batch, so both cores work and memory does not grow with
`--count`. With a filter each batch is a batch of candidates, of which only those the filter accepts are kept: those a
real-trained CNN recognises as their class (`filter_by="classifier"`), or those discriminator rejection sampling with
the class's own discriminator keeps (`filter_by="discriminator"`, `cifar_synth.drs`).

Everything is written into a hidden staging folder beside the target, under the target's lock, and swapped into
place only when whole (`cifar_synth.files.staged_folder`); staging folders that a killed export left behind are
removed by the next export to the same target. The manifest names no machine: paths are relative to the runs folder
and host names are left out (`portable`), since `publish` uploads it.
"""

import base64
import contextlib
import functools
import json
import multiprocessing
import os
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

from cifar_synth import baseline_cache
from cifar_synth.baseline_cache import CachedClassifier, choose_cached_classifier
from cifar_synth.card import checked_license, write_card
from cifar_synth.classes import SHARED_START, Classes
from cifar_synth.drs import DiscriminatorFilter
from cifar_synth.errors import UserError
from cifar_synth.files import clear_leftovers, full_disk_note, staged_folder
from cifar_synth.filtering import (DEFAULT_MIN_CONFIDENCE, EVALUATOR_CACHE, MAX_CANDIDATES_PER_IMAGE, SELECTION_JUDGE,
                                   ClassifierFilter, ImageFilter)
from cifar_synth.formats import FORMATS
from cifar_synth.formats.base import Batch
from cifar_synth.formats.images import encode_pngs
from cifar_synth.formats.parquet import ParquetWriter
from cifar_synth.locks import hold
from cifar_synth.provenance import package_versions
from cifar_synth.reporter import Reporter
from cifar_synth.runs import GENERATOR_FILE, RunPaths, run_config, run_summary, runs_classes, trained_classes
from cifar_synth.sampling import (LATENT_RECIPE, ClassSampler, class_sampler, generate, latent_batches, load_generator,
                                  stale_selection)
from cifar_synth.synthetic import FORMAT_VERSION, MANIFEST

DEFAULT_BATCH_SIZE = 2048  # large batches run the generator near its FLOP bound (docs/benchmarks.md)
SAMPLES_PER_CLASS = 10  # images of each class in the sample sheet
FILTERED_LATENT_RECIPE = (
    "candidate latents of class `label` = numpy.random.default_rng([seed, label]).standard_normal((candidates, "
    "latent_dim), dtype=numpy.float32) × generator.latent_std, with `candidates` from the class's filter entry; image "
    "k is the candidate at "
    "the k-th True of numpy.unpackbits(numpy.frombuffer(base64.b64decode(accepted_mask), numpy.uint8), "
    "count=candidates), i.e. cifar_synth.exporter.accepted_candidates(class entry)[k]"
)
FILTERS = ("none", "classifier", "selected", "discriminator")
# The default name's suffix of each filter but the classifier's, which names its min confidence.
_NAME_SUFFIXES = {"none": "", "selected": "-filter-selected", "discriminator": "-filter-discriminator"}
# PNG encoding runs in this many processes, each batch split between them; the generator uses the cores meanwhile.
_ENCODERS = 2
_BATCHES_IN_FLIGHT = 2  # generated batches waiting for their PNGs: bounds memory, keeps the encoders fed


@dataclass(frozen=True)
class ExportOptions:
    """Everything `export_dataset` needs; `validated()` checks it (the one place) and fills in the defaults.

    `out` defaults to `datasets/synthetic/<name>`, and `name` to `<runs dir name>-seed<seed>`, plus
    `-filter<min_confidence>` when filtering. With `filter_by="classifier"`, only candidates that the Keras
    classifier at `classifier` (default: the evaluator's cached real-trained one) recognises as their class with
    probability at least `min_confidence` (default 0.5) are kept; see `cifar_synth.filtering.FILTER_RULE`. With
    `filter_by="selected"` the classifier is the selection judge and each class's threshold the one `cifar-synth
    select` chose on the validation slice (name suffix `-filter-selected`). With `filter_by="discriminator"` each
    class is filtered by discriminator rejection sampling with its own run's discriminator (`cifar_synth.drs`; name
    suffix `-filter-discriminator`). `license` is the identifier the dataset card gives the data
    (`cifar_synth.card.checked_license`; default "unknown", explained in the card).
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
    license: str = "unknown"  # the card's licence identifier
    # Sample each class as its `cifar-synth select` choice says (snapshot and latent spread) where it has one.
    use_selection: bool = True
    # After the filter, drop the candidates `cifar-synth audit` would flag as copies of the real training images at
    # `data_path` (`cifar_synth.audit.CopyExclusion`); the manifest's filter entry records how many, per class.
    exclude_copies: bool = False
    data_path: str | Path | None = None

    def validated(self) -> "ExportOptions":
        """These options checked, with `formats` and `license` normalised and `min_confidence` and `out` filled in."""
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
        license_id = checked_license(self.license)
        runs_dir = Path(self.runs_dir)
        out = self.out
        if out is None:
            suffix = (_NAME_SUFFIXES[self.filter_by] if self.filter_by in _NAME_SUFFIXES else
                      f"-filter{min_confidence:g}")
            out = Path("datasets/synthetic") / (self.name or f"{runs_dir.resolve().name}-seed{self.seed}{suffix}")
        return replace(self, runs_dir=runs_dir, formats=formats, min_confidence=min_confidence, out=Path(out),
                       classifier=None if self.classifier is None else Path(self.classifier), license=license_id)

    def _checked_min_confidence(self) -> float | None:
        """The minimum confidence to use (None without a filter)."""
        if self.filter_by not in FILTERS:
            raise UserError(f"unknown filter {self.filter_by!r}; valid filters: {', '.join(FILTERS)}")
        if self.filter_by != "classifier":
            # Refused rather than ignored: an export the user believes filtered must not silently be unfiltered, nor
            # one filtered as `select` chose silently be filtered otherwise.
            given = [option for option, value in (("--classifier", self.classifier),
                                                  ("--min-confidence", self.min_confidence)) if value is not None]
            if given:
                raise UserError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --filter classifier"
                                + {"selected": " (--filter selected uses the judge and thresholds `cifar-synth select` "
                                               "chose)",
                                   "discriminator": " (--filter discriminator uses each class's own discriminator, "
                                                    "no classifier)"}.get(self.filter_by, ""))
            if self.filter_by == "selected" and not self.use_selection:
                raise UserError("--filter selected follows the selection; it cannot go with --no-selection")
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


def accepted_candidates(class_entry: dict) -> np.ndarray:
    """Candidate (latent row) index of each image of a filtered export's manifest class entry, in image order."""
    filtered = class_entry["filter"]
    mask = np.unpackbits(np.frombuffer(base64.b64decode(filtered["accepted_mask"]), np.uint8),
                         count=filtered["candidates"])
    return np.flatnonzero(mask)


def export_dataset(options: ExportOptions = ExportOptions(), reporter: Reporter | None = None) -> ExportResult:
    """Write `options.count` images of each class to `options.out` in each format, with its card and manifest.

    Progress goes to `reporter`, and as warnings what killed exports left behind and this one cleared up.
    """
    options = options.validated()
    reporter = reporter or Reporter()
    dataset = runs_classes(options.runs_dir)
    classes = _resolve_classes(options.runs_dir, dataset, options.classes)
    out = options.out
    with hold(out, "export target"):
        _report_leftovers(out, clear_leftovers(out, MANIFEST), reporter)
        _check_target(out, options.overwrite)
        image_filter = _make_filter(options, dataset, classes)
        if options.exclude_copies:
            from cifar_synth.audit import copy_exclusion

            image_filter = copy_exclusion(options.runs_dir, classes, options.data_path, image_filter, reporter)
        try:
            with staged_folder(out) as staging:
                manifest, samples = _write(staging, out.name, dataset, classes, options, image_filter, reporter)
                write_card(staging, manifest, samples)
                (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # last: marks it whole
        except OSError as error:  # disk full, read-only file system: the user's to fix
            where = error.filename or staging
            raise UserError(f"writing {out} failed: {error.strerror or error}{full_disk_note(where, error)} "
                            f"({where}); {_kept(out, options.overwrite)}") from None
    return ExportResult(out, manifest)


def _report_leftovers(out: Path, leftovers, reporter: Reporter) -> None:
    if leftovers.restored:
        reporter.warn(f"restored the previous export at {out}: an earlier --overwrite was killed while swapping it")
    for leftover, size in leftovers.removed:
        reporter.warn(f"removed {leftover} ({size / 1e6:.1f} MB), left by a killed export")
    for leftover in leftovers.stuck:
        reporter.warn(f"could not remove {leftover}, left by a killed export; delete it")


def _kept(out: Path, overwrite: bool) -> str:
    return f"the existing export at {out} is unchanged" if overwrite and out.exists() else "nothing was written"


def _resolve_classes(runs_dir: Path, dataset: Classes, requested) -> list[str]:
    if not requested:
        classes = trained_classes(runs_dir)
        if not classes:
            raise UserError(
                f"no trained generators in {runs_dir} (looked for {runs_dir / '<class>' / GENERATOR_FILE}); "
                "train one with `cifar-synth train` or pass --runs"
            )
        return classes
    classes = dataset.parse(list(requested))
    missing = [name for name in classes if not (runs_dir / name / GENERATOR_FILE).is_file()]
    if missing:
        paths = ", ".join(str(runs_dir / name / GENERATOR_FILE) for name in missing)
        raise UserError(f"no trained generator for {', '.join(missing)}: {paths} not found")
    return classes


def _make_filter(options: ExportOptions, dataset: Classes, classes: list[str]) -> ImageFilter | None:
    if options.filter_by == "none":
        return None
    if options.filter_by == "discriminator":
        return DiscriminatorFilter(options.runs_dir, classes, options.seed, options.use_selection)
    if options.filter_by == "selected":
        return _selected_filter(options.runs_dir, dataset, classes)
    if options.classifier is None:
        chosen = choose_cached_classifier(_trained_on(options.runs_dir, classes),
                                          per_class=_real_per_class(options.runs_dir, classes))
        return ClassifierFilter(chosen.path, options.min_confidence, len(dataset), EVALUATOR_CACHE, chosen.describe())
    # A file named by the user counts as the evaluator's only when it is a cache entry trained on the same data; its
    # figures are then given too, whatever they are (named, it is used even below the floor).
    known = False
    if (sha256 := baseline_cache.trained_on(options.classifier)) is not None:
        try:
            known = sha256 == _trained_on(options.runs_dir, classes)
        except UserError:  # runs that do not record their data: the match cannot be shown
            pass
    baseline = CachedClassifier.read(options.classifier).describe() if known else None
    return ClassifierFilter(options.classifier, options.min_confidence, len(dataset),
                            EVALUATOR_CACHE if known else None, baseline)


def _selected_filter(runs_dir: Path, dataset: Classes, classes: list[str]) -> ClassifierFilter:
    """The selection judge with each class's threshold as `cifar-synth select` chose it; an error for a class
    without a current choice."""
    choices = {}
    for class_name in classes:
        choice = (class_sampler(runs_dir / class_name).selection or {}).get("filter")
        if choice is None:
            raise UserError(f"{class_name} has no filter threshold chosen by `cifar-synth select` (never selected "
                            "with every class, or trained since): run `cifar-synth select` on all classes, or use "
                            "--filter classifier")
        choices[class_name] = choice
    if len({choice["classifier"]["sha256"] for choice in choices.values()}) > 1:
        raise UserError("the classes' thresholds were chosen with different selection judges; run `cifar-synth "
                        "select` on all classes at once")
    judge = runs_dir / next(iter(choices.values()))["classifier"]["path"]
    if not judge.is_file():
        raise UserError(f"the selection judge {judge} is gone; run `cifar-synth select` again")
    return ClassifierFilter(judge, {name: choice["min_confidence"] for name, choice in choices.items()}, len(dataset),
                            SELECTION_JUDGE)


def _trained_on(runs_dir: Path, classes: list[str]) -> str:
    """The sha256 of the real data the classes' generators trained on (their config.json), for the cached filter."""
    found = {(_read_run_config(RunPaths(runs_dir / name)) or {}).get("data", {}).get("sha256")
             for name in classes}
    if len(found) != 1 or None in found:
        raise UserError(f"cannot tell which real data the generators in {runs_dir} trained on (their config.json "
                        "records none, or several), so not which cached classifier fits them; pass --classifier")
    return found.pop()


def _real_per_class(runs_dir: Path, classes: list[str]) -> int | None:
    """The real training images of the classes' smallest (what the evaluator trains its baseline on at most), by
    their runs' config.json: the images each trained on plus its validation slice; None when no run tells (runs
    that trained on the test split too, or of cifar-synth before these were recorded)."""
    counts = []
    for name in classes:
        config = _read_run_config(RunPaths(runs_dir / name)) or {}
        data, images = config.get("data") or {}, config.get("train_images")
        if data.get("splits") == ["train"] and isinstance(images, int):
            counts.append(images + ((data.get("validation") or {}).get("images") or 0))
    return min(counts) if counts else None


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


# --- generating, encoding and writing -------------------------------------------------------------------------------

def _write(staging: Path, name: str, dataset: Classes, classes: list[str], options: ExportOptions,
           image_filter: ImageFilter | None, reporter: Reporter) -> tuple[dict, list[np.ndarray]]:
    """Write every format into `staging`; the manifest and the first images of each class (for the sample sheet)."""
    total = options.count * len(classes)
    class_entries, samples = [], []
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(FORMATS[fmt].writer(staging, total, dataset)) for fmt in options.formats]
        encoders = stack.enter_context(_encoders()) if any(writer.needs_png for writer in writers) else None
        progress = stack.enter_context(_progress(reporter))
        task = progress.add_task("exporting", total=total)
        if image_filter is not None:
            reporter.info(f"Filtering with {image_filter}")
        for class_name in classes:
            label = dataset.label(class_name)
            sampler = class_sampler(options.runs_dir / class_name, options.use_selection)
            if stale_selection(options.runs_dir / class_name, sampler):
                reporter.warn(f"{class_name}: its selection.json predates its last training; exporting the final "
                              "generator (run `cifar-synth select` again to choose among the new snapshots)")
            progress.update(task, description=f"loading {class_name}")
            generator, latent_dim = load_generator(sampler.path)
            progress.update(task, description=class_name)
            decisions, class_samples = [], []
            batches = _class_batches(label, class_name, generator, sampler, latent_dim, options, image_filter,
                                     decisions)
            for batch in _encoded(batches, encoders):
                for writer in writers:
                    writer.write(batch)
                class_samples.append(batch.images[:SAMPLES_PER_CLASS])
                progress.advance(task, len(batch.names))
            del generator  # one generator in memory at a time
            class_entries.append(_class_entry(class_name, label, sampler, latent_dim, options, image_filter,
                                              decisions))  # first: it fails on a class the filter left short
            samples.append(np.concatenate(class_samples)[:SAMPLES_PER_CLASS])
        files = [entry for writer in writers for entry in writer.finish()]
        parquet_bytes = {"num_bytes": writer.num_bytes for writer in writers if isinstance(writer, ParquetWriter)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "count_per_class": options.count,
        "seed": options.seed,
        "batch_size": options.batch_size,
        "latents": LATENT_RECIPE if image_filter is None else FILTERED_LATENT_RECIPE,
        "filter": {"method": "none"} if image_filter is None else image_filter.describe(),
        "dataset": dataset.to_record(),
        "classes": class_entries,
        "formats": list(options.formats),
        "files": files,
        "splits": {"train": {"num_examples": total, **parquet_bytes}},
        "license": options.license,
        "versions": package_versions(),
    }
    return portable(manifest, options.runs_dir), samples


def _class_batches(label: int, class_name: str, generator, sampler: ClassSampler, latent_dim: int,
                   options: ExportOptions, image_filter: ImageFilter | None,
                   decisions: list[np.ndarray]) -> Iterator[Batch]:
    """The class's images in order, one generator batch at a time (kept ones only); appends each accept mask to
    `decisions`."""
    count = options.count
    # Candidates are drawn in order until `count` pass; without a filter every candidate passes.
    limit = count if image_filter is None else count * MAX_CANDIDATES_PER_IMAGE
    width = max(5, len(str(count - 1)))
    written = 0
    candidates = (generate(generator, latents, sampler.path) for latents in
                  latent_batches(options.seed, label, limit, latent_dim, options.batch_size, sampler.latent_std))
    if image_filter is not None:
        candidates = image_filter.start_class(candidates, label, class_name)
    for images in candidates:
        keep = np.ones(len(images), bool) if image_filter is None else image_filter.accepts(images, label, class_name)
        kept = np.flatnonzero(keep)
        if len(kept) >= count - written:  # the class is complete: later candidates are not examined
            keep = keep[:kept[count - written - 1] + 1]
        decisions.append(keep)
        images = images[:len(keep)][keep]
        if len(images):
            names = [f"{index:0{width}d}.png" for index in range(written, written + len(images))]
            yield Batch(label, class_name, images, names, pngs=None)
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


def _class_entry(class_name: str, label: int, sampler: ClassSampler, latent_dim: int, options: ExportOptions,
                 image_filter: ImageFilter | None, decisions: list[np.ndarray]) -> dict:
    """The manifest's entry of a class: its generator, how it was trained (the run's config.json, how far it trained
    and the run it started from) and, when filtered, the filter's decisions."""
    paths = RunPaths(options.runs_dir / class_name)
    config = _read_run_config(paths)
    summary = run_summary(paths.root)
    entry = {
        "name": class_name, "label": label, "count": options.count, "latent_dim": latent_dim,
        "generator": sampler.describe(options.runs_dir),
        "run_config": config,
        "trained": None if summary is None else {"steps": summary.steps, "images_seen": summary.images_seen,
                                                 "epochs": summary.epochs},
        "started_from": _started_from(config, options.runs_dir),
    }
    if image_filter is not None:
        entry["filter"] = _filter_entry(class_name, np.concatenate(decisions), options.count, image_filter)
    return entry


def _started_from(config: dict | None, runs_dir: Path) -> dict | None:
    """The run whose weights this run started from (the first session's `started_from`, relative to the runs folder
    in runs of cifar-synth since it was recorded so), with how many images that run trained on and how many steps it
    had taken, from its own config.json when it is still readable."""
    start = next((session["started_from"] for session in (config or {}).get("sessions", [])
                  if isinstance(session, dict) and "started_from" in session), None)
    if start is None:
        return None
    source = _read_run_config(RunPaths(runs_dir / start["run"])) or {}  # an absolute "run" stays itself
    batch_size = (source.get("gan") or {}).get("batch_size")
    steps = start.get("steps") or (start["images_seen"] // batch_size if batch_size else None)
    return {**start, "shared_start": Path(start["run"]).name == SHARED_START,
            "train_images": source.get("train_images"), "steps": steps}


def _filter_entry(class_name: str, decisions: np.ndarray, count: int, image_filter: ImageFilter) -> dict:
    """The class's filter settings, statistics and accepted-candidate mask; an error if the candidate cap stopped it
    short."""
    accepted, candidates = int(decisions.sum()), len(decisions)
    if accepted < count:
        judge, setting, remedy = image_filter.shortfall(class_name)
        raise UserError(
            f"{class_name}: {judge} accepted only {accepted} of {candidates:,} candidates "
            f"({accepted / candidates:.1%}){setting}, short of --count {count} within the cap of "
            f"{MAX_CANDIDATES_PER_IMAGE} candidates per image; {remedy}")
    return {**image_filter.class_record(class_name, candidates), "candidates": candidates, "accepted": accepted,
            "acceptance_rate": accepted / candidates,
            "rejection_rate": 1 - accepted / candidates,
            "accepted_mask": base64.b64encode(np.packbits(decisions).tobytes()).decode()}


def _progress(reporter: Reporter) -> Progress:
    return reporter.progress(
        TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )


def _read_run_config(paths: RunPaths) -> dict | None:
    return run_config(paths.root)


# --- a manifest that names no machine -------------------------------------------------------------------------------

def portable(manifest: dict, runs_dir: Path) -> dict:
    """`manifest` with every "host" key left out and every absolute path made relative to `runs_dir`, or, for a path
    outside it, cut to its last part; the manifest's `paths` entry says so and lists where."""
    outside: list[str] = []
    clean = _portable(manifest, Path(runs_dir).resolve(), "", outside)
    clean["paths"] = {"relative_to": "the runs folder the generators were exported from",
                      "outside_it_reduced_to_name": outside}
    return clean


def _portable(value, runs_root: Path, where: str, outside: list[str]):
    if isinstance(value, dict):
        return {key: _portable(item, runs_root, f"{where}.{key}".lstrip("."), outside)
                for key, item in value.items() if key != "host"}
    if isinstance(value, list):
        return [_portable(item, runs_root, f"{where}[{index}]", outside) for index, item in enumerate(value)]
    if not (isinstance(value, str) and os.path.isabs(value)):
        return value
    path = Path(value).resolve()
    if path.is_relative_to(runs_root):
        return path.relative_to(runs_root).as_posix()
    outside.append(where)
    return path.name
