"""`cifar-synth train`: train (or resume) one class's DCGAN into its run directory (layout: `cifar_synth.runs`)."""

import json
import math
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cifar_synth.classes import CIFAR10, SHARED_START, Classes
from cifar_synth.config import MAX_SEED, NO_INIT, GANConfig, TrainOptions
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, cannot_write, sha256_file, write_json_atomic
from cifar_synth.gan import DCGAN, build_gan, make_dataset
from cifar_synth.images import to_uint8, to_unit_range
from cifar_synth.locks import hold
from cifar_synth.metrics import mean_pairwise_distance
from cifar_synth.progress import RichProgress
from cifar_synth.reporter import Reporter
from cifar_synth.saved_models import load_weights, save_weights
from cifar_synth.runs import (HISTORY_COLUMNS, ResumeRecord, RunPaths, claim_runs, plot_losses, read_config,
                              read_history, read_record, run_config, run_summary, trim_to_record,
                              write_history)
from cifar_synth.provenance import package_versions

if TYPE_CHECKING:
    from cifar_synth.data import RealData

GRID_SIDE = 10
# Generated samples whose mean pairwise distance falls below this fraction of real images' are likely collapsed.
COLLAPSE_RATIO = 0.5
# A new generator's outputs are nearly identical by construction, so a low ratio warns only after a fall from a
# healthy ratio, or when a run never reached one within this many epochs (measurements: docs/train.md).
COLLAPSE_WARMUP_EPOCHS = 12


@dataclass(frozen=True)
class RunResult:
    class_name: str
    run_dir: Path
    epochs_done: int
    images_per_second: float
    diversity_ratio: float | None


def train_classes(class_names: list[str], gan_config: GANConfig, options: TrainOptions,
                  data_path: str | Path | None, runs_dir: str | Path,
                  reporter: Reporter | None = None, dataset: str | None = None) -> list[RunResult]:
    """Train each of `class_names` (`--class` values) of the real data (`data_path`, `dataset`: `open_real_data`)
    in turn, the shared start first where the recipe needs it (`plan_runs`); every class is an independent job with
    its own run directory."""
    reporter = reporter or Reporter()
    gan_config.validate()
    data, class_names = open_training_data(class_names, data_path, dataset, options, runs_dir, reporter)
    return [train_class_from(data, class_name, gan_config, run_options, runs_dir, reporter)
            for class_name, run_options in plan_runs(class_names, options, runs_dir, reporter)]


def plan_runs(class_names: list[str], options: TrainOptions, runs_dir: str | Path,
              reporter: Reporter | None = None) -> list[tuple[str, TrainOptions]]:
    """The runs to train, in order, each with its options: the default recipe starts new class runs from the shared
    start, so it trains (or finishes) the shared start first when the runs directory has none that reached its
    budget; a finished one is reused. The shared start is never made `--fresh` unless it is asked for by name."""
    plan = [(name, options) for name in class_names]
    if options.start != SHARED_START or SHARED_START in class_names:
        return plan
    new_runs = [name for name in class_names if options.fresh or read_record(Path(runs_dir) / name) is None]
    shared = read_record(Path(runs_dir) / SHARED_START)
    if not new_runs:
        return plan
    if shared is not None and shared.budget_reached:
        summary = run_summary(Path(runs_dir) / SHARED_START)
        (reporter or Reporter()).info(f"{', '.join(new_runs)}: starting from the shared start in {runs_dir}, "
                                      f"reused ({summary.text if summary else 'trained'})")
        return plan
    return [(SHARED_START, replace(options, fresh=False)), *plan]


def open_training_data(requested: list[str], data_path: str | Path | None, dataset: str | None,
                       options: TrainOptions, runs_dir: str | Path, reporter: Reporter) -> tuple["RealData", list[str]]:
    """The real data to train on (`open_real_data`: downloaded if need be) and the `requested` classes of it, the
    runs folder claimed for its dataset (`claim_runs`); a warning when the test split is included."""
    from cifar_synth.data import known_classes, open_real_data

    if (known := known_classes(data_path, dataset)) is not None:
        known.parse(requested, shared=True)
    data = open_real_data(data_path, dataset=dataset)
    class_names = data.classes.parse(requested, shared=True)
    claim_runs(runs_dir, data.classes)
    if options.include_test:
        reporter.warn("--include-test trains on the test split too; evaluating on that split is then no longer "
                      "honest.")
    return data, class_names


def train_class_from(data: "RealData", class_name: str, gan_config: GANConfig, options: TrainOptions,
                     runs_dir: str | Path, reporter: Reporter | None = None) -> RunResult:
    """Load one class's images from `data` and train it into `runs_dir/<class>` (one job of `train_classes`).

    The class `shared` is the shared start: all classes' images. The validation slice of the training split
    (`options.validation_fraction` of each class, `data.split_validation`) is never trained on.
    """
    from cifar_synth.data import VALIDATION_SEED, split_validation

    shared = class_name == SHARED_START
    labels = None if shared else [data.classes.label(class_name)]
    train, validation = split_validation(data.load("train", classes=labels), options.validation_fraction)
    parts = [train] + ([data.load("test", classes=labels)] if options.include_test else [])
    images = np.concatenate([part.images for part in parts])
    if len(images) < gan_config.batch_size:
        raise UserError(f"only {len(images)} images of class {class_name!r} in {data.source}; "
                        f"need at least one batch ({gan_config.batch_size})")
    data_info = {"source": data.source, "kind": data.kind, "sha256": data.sha256,
                 "splits": ["train", "test"] if options.include_test else ["train"],
                 "validation": {"fraction": options.validation_fraction, "seed": VALIDATION_SEED,
                                "images": len(validation)}}
    return train_class(class_name, images, data_info, gan_config, options.for_run(shared),
                       Path(runs_dir) / class_name, reporter, data.classes,
                       labels=np.concatenate([part.labels for part in parts]))


def train_class(class_name: str, images: np.ndarray, data_info: dict, gan_config: GANConfig,
                options: TrainOptions, run_dir: Path, reporter: Reporter | None = None,
                classes: Classes = CIFAR10, labels: np.ndarray | None = None) -> RunResult:
    """Train (or resume) one class of `classes` on `images` (uint8), writing every artifact under `run_dir`.
    The class-aware shared start (`gan_config.class_aware`) needs the images' `labels`.

    The run directory is held (`cifar_synth.locks`) for the whole call: a second process is refused.
    """
    reporter = reporter or Reporter()
    gan_config.validate()
    class_index = None if class_name == SHARED_START else classes.label(class_name)
    if class_index is None and gan_config.guidance > 0:
        raise UserError("--guidance needs a class to guide toward; the shared start trains on all classes")
    num_classes = len(classes) if class_index is None and gan_config.class_aware else None
    if num_classes and labels is None:
        raise ValueError("the class-aware shared start needs the images' labels")
    paths = RunPaths(run_dir)
    with hold(run_dir, "run directory"):
        if options.fresh and run_dir.exists():
            shutil.rmtree(run_dir)
        record = _resume_point(paths, gan_config)
        source = _init_source(options.start, run_dir)
        if record is not None and options.init_from is not None and source is not None:
            reporter.info(f"{class_name} resumes its own run; --init-from applies to new runs only; use --fresh to "
                          f"start over from {options.init_from}")
        if _budget_spent(options, record, gan_config.batch_size):
            if not _generator_is_recorded(paths, record):  # the guide is not part of the checkpoint: not needed
                _restore(paths, build_gan(replace(gan_config, guidance=0.0), seed=options.seed,
                                          num_classes=num_classes), record)
            budget = f"--steps {options.steps}" if options.steps is not None else f"--epochs {options.epochs}"
            reporter.info(f"{class_name}: already trained for {_record_steps(record, gan_config.batch_size):,} steps, "
                          f"{record.epoch} epochs ({budget}); raise it to continue or pass --fresh to start over.")
            return RunResult(class_name, run_dir, record.epoch, 0.0, _last_diversity_ratio(paths))
        start_epoch = record.epoch if record else 0
        keras.utils.set_random_seed((options.seed + start_epoch) % (MAX_SEED + 1))
        guide = _load_guide(options.guide, data_info["sha256"], len(classes)) if gan_config.guidance > 0 else None
        gan = build_gan(gan_config, seed=options.seed, guide=guide, class_index=class_index,
                        num_classes=num_classes)
        gan = _restore(paths, gan, record)
        start = None
        if record:
            reporter.info(f"{class_name}: resuming after epoch {start_epoch} from {run_dir}")
        elif source is not None:
            start = _start_from(gan, source, run_dir, reporter, classes)
        session = _start_session(paths, {
            "class_name": class_name,
            "class_index": class_index,
            "gan": gan.config.to_dict(),  # precision "auto" resolved to what this machine computes in
            "training": asdict(options),
            "data": data_info,
            "train_images": len(images),
            # Whether any weights of this run ever trained on the test split: carried through resume and
            # --init-from, so a later session without --include-test cannot launder it.
            "saw_test_split": options.include_test or _saw_test_split(paths.root if record else None)
                              or bool(start and start["saw_test_split"]),
            "versions": package_versions(),
        }, start_epoch, start)
        return _fit(gan, class_name, images, options, paths, record, session, reporter,
                    labels if num_classes else None)


def _record_steps(record: ResumeRecord, batch_size: int) -> int:
    """Training steps a record has done (records before `steps` was recorded: from the images seen)."""
    return record.steps if record.steps is not None else record.images_seen // batch_size


def _budget_spent(options: TrainOptions, record: ResumeRecord | None, batch_size: int) -> bool:
    if record is None:
        return False
    return ((options.epochs is not None and record.epoch >= options.epochs)
            or (options.steps is not None and _record_steps(record, batch_size) >= options.steps))


def _saw_test_split(run_dir: Path | None) -> bool:
    """Whether the run at `run_dir` (None: no run) trained on the test split, by its config.json."""
    if run_dir is None:
        return False
    try:
        config = read_config(run_dir)
    except (OSError, ValueError):
        return False
    return bool(config.get("saw_test_split") or config.get("training", {}).get("include_test"))


def _fit(gan: DCGAN, class_name: str, images: np.ndarray, options: TrainOptions, paths: RunPaths,
         record: ResumeRecord | None, session: int, reporter: Reporter, labels: np.ndarray | None) -> RunResult:
    start_epoch = record.epoch if record else 0
    batch_size = gan.config.batch_size
    steps_per_epoch = len(images) // batch_size
    artifacts = RunArtifacts(gan, paths, images, options, record, session, reporter)
    budget = [TimeBudget(options.minutes * 60, _CLOCKS[options.budget_clock])] if options.minutes is not None else []
    if options.steps is not None:
        budget.append(StepBudget(options.steps - artifacts.steps_done))
    shown_epochs = options.epochs or (math.ceil(options.steps / steps_per_epoch) if options.steps else None)
    progress = RichProgress(shown_epochs, steps_per_epoch, class_name, start_epoch, reporter)
    started = time.perf_counter()
    try:
        gan.fit(make_dataset(images, batch_size, seed=options.seed + start_epoch, labels=labels),
                epochs=options.epochs or 10**9, initial_epoch=start_epoch, steps_per_epoch=steps_per_epoch,
                callbacks=[artifacts, *budget, progress], verbose=0,
                shuffle=False)  # the dataset reshuffles itself every pass
    except KeyboardInterrupt:
        progress.progress.stop()
        reporter.info(f"{class_name}: interrupted. The checkpoint after epoch {artifacts.last_saved_epoch} is kept; "
                      "run the same command again to resume.")
        raise
    except UserError as error:  # a write failed (disk full, no permission): say what is still safe
        progress.progress.stop()
        raise UserError(f"{class_name}: {error}; stopped. The checkpoint after epoch {artifacts.last_saved_epoch} "
                        f"is kept in {paths.root}.") from None
    if artifacts.bad_loss is not None:
        raise UserError(f"{class_name}: {artifacts.bad_loss}; stopped. The last good checkpoint (epoch "
                        f"{artifacts.last_saved_epoch}) is kept in {paths.root}; try lower learning rates or --fresh.")
    seconds = time.perf_counter() - started
    images_per_second = artifacts.images_trained / seconds if seconds else 0.0
    epochs = f"{artifacts.last_saved_epoch} epoch{'' if artifacts.last_saved_epoch == 1 else 's'}"
    reporter.info(f"{class_name}: {artifacts.steps_done:,} steps, {epochs}, {artifacts.images_seen:,} images seen, "
                  f"{images_per_second:.0f} real images/s; samples in {paths.latest_samples}")
    return RunResult(class_name, paths.root, artifacts.last_saved_epoch, images_per_second, artifacts.diversity_ratio)


def _load_guide(path: str | None, real_sha256: str, num_classes: int) -> keras.Model:
    from cifar_synth.classifier import load_classifier
    from cifar_synth.baseline_cache import the_cached_cnn_classifier

    return load_classifier(path if path is not None else the_cached_cnn_classifier(real_sha256), num_classes)


def _init_source(init_from: str, run_dir: Path) -> Path | None:
    """The run directory `--init-from` names (`shared`: the shared start beside `run_dir`); None for `none`, and
    for the shared start itself (one command may train it and the classes that start from it). A named run
    directory that does not exist is refused even when the run resumes, so a typo never goes unseen."""
    if init_from == NO_INIT or (init_from == SHARED_START and run_dir.name == SHARED_START):
        return None
    source = run_dir.parent / SHARED_START if init_from == SHARED_START else Path(init_from)
    if init_from != SHARED_START and not source.is_dir():
        raise UserError(f"--init-from {init_from}: no such run directory")
    if source.resolve() == run_dir.resolve():
        raise UserError(f"--init-from {init_from}: a run cannot start from itself")
    return source


def _start_from(gan: DCGAN, source: Path, run_dir: Path, reporter: Reporter, classes: Classes = CIFAR10) -> dict:
    """Give a new run's networks (G, D and G's moving average) the weights of the run at `source`, as its resume
    record left them (a class-aware shared start folded into the run's class); the optimizers start afresh, as in
    fine-tuning. Returns what to record about the start."""
    record = read_record(source)
    if record is None:
        hint = (f"train it first: cifar-synth train --class {SHARED_START} --runs {source.parent}"
                if source.name == SHARED_START else "train it first, or name a run directory that has")
        raise UserError(f"--init-from: {source} has no finished epoch to start from; {hint}")
    try:
        changed = _architecture_changes(RunPaths(source), gan.config)
    except _UNREADABLE_SETTINGS as error:
        raise UserError(f"--init-from: cannot read the settings of {source}: {error}") from None
    if changed:
        differences = "; ".join(f"{name} {saved} there, {wanted} here" for name, saved, wanted in changed)
        raise UserError(f"--init-from: {source} has other networks ({differences}); use its settings, or "
                        f"--init-from {NO_INIT} to start from random weights")
    conditional = gan.config.class_aware and read_config(source).get("class_index") is None
    if gan.num_classes and not conditional:
        raise UserError(f"--init-from: {source} is a run of one class; a class-aware shared start cannot start "
                        f"from it (--init-from {NO_INIT})")
    donor = build_gan(replace(gan.config, guidance=0.0), num_classes=len(classes) if conditional else None)
    try:
        load_weights(donor, RunPaths(source).checkpoint / record.weights)
    except FileNotFoundError:  # its next epoch was recorded meanwhile and this file removed
        raise UserError(f"--init-from: {source} changed while it was read (is it being trained?); "
                        "start again when it is done") from None
    gan.start_from(donor)
    reporter.info(f"starting from {source} after its epoch {record.epoch} ({record.images_seen:,} images seen)")
    # Relative to the runs folder: the record travels into exports' manifests, which must not carry machine paths.
    return {"run": os.path.relpath(source.absolute(), run_dir.parent.absolute()), "epoch": record.epoch,
            "images_seen": record.images_seen, "steps": _record_steps(record, gan.config.batch_size),
            "generator_sha256": record.generator_sha256, "saw_test_split": _saw_test_split(source)}


# What reading a run's config.json may raise: missing or unreadable, not JSON, or not the settings of a run.
_UNREADABLE_SETTINGS = (OSError, ValueError, KeyError, TypeError)


def _architecture_changes(paths: RunPaths, gan_config: GANConfig) -> list[tuple[str, object, object]]:
    """(field, saved, wanted) for each network-shaping field in which `gan_config` differs from the run's saved
    settings; raises one of `_UNREADABLE_SETTINGS` when those cannot be read."""
    saved = GANConfig.from_dict(json.loads(paths.config.read_text())["gan"])
    return [(name, getattr(saved, name), getattr(gan_config, name)) for name in GANConfig.ARCHITECTURE_FIELDS
            if getattr(saved, name) != getattr(gan_config, name)]


def _resume_point(paths: RunPaths, gan_config: GANConfig) -> ResumeRecord | None:
    """The record to resume from (None: start at epoch 0), after trimming the run directory to it.

    Refuses a resume that changes the networks' shapes.
    """
    record = read_record(paths.root)
    if record is not None:
        try:
            changed = _architecture_changes(paths, gan_config)
        except _UNREADABLE_SETTINGS as error:
            raise UserError(f"cannot read the settings {paths.config} of the recorded run: {error}; pass --fresh "
                            "to start over") from None
        if changed:
            differences = "; ".join(f"{name} {saved} → {wanted}" for name, saved, wanted in changed)
            raise UserError(f"{paths.root} was trained with a different architecture ({differences}); "
                            "use the same options to resume, --fresh to start over, or another --runs directory.")
    try:
        trim_to_record(paths.root, record)
    except OSError as error:
        raise cannot_write(error.filename or paths.root, error) from None
    return record


def _restore(paths: RunPaths, gan: DCGAN, record: ResumeRecord | None) -> DCGAN:
    """`gan` as the record left it: weights, optimizers, random stream; and generator.keras the recorded one."""
    if record is None:
        return gan
    load_weights(gan, paths.checkpoint / record.weights)  # a truncated checkpoint: one line, not a traceback
    # The checkpoint also restores the learning rates; the ones asked for now win.
    gan.d_optimizer.learning_rate.assign(gan.config.d_learning_rate)
    gan.g_optimizer.learning_rate.assign(gan.config.g_learning_rate)
    if record.seed_generator_state is not None:
        gan.seed_generator.state.assign(np.asarray(record.seed_generator_state, dtype="int64"))
    if not _generator_is_recorded(paths, record):
        with atomic_path(paths.generator) as temp:
            gan.sampler.save(temp)
    return gan


def _generator_is_recorded(paths: RunPaths, record: ResumeRecord) -> bool:
    """Whether generator.keras is the one written for the record's epoch (not one of an unrecorded later epoch)."""
    if record.generator_sha256 is None:  # a record of cifar-synth before this check: nothing to compare with
        return True
    return paths.generator.exists() and sha256_file(paths.generator) == record.generator_sha256


def _start_session(paths: RunPaths, config: dict, start_epoch: int, start: dict | None = None) -> int:
    """Write config.json for this invocation: its settings on top, and one more entry in `sessions` saying when it
    started, from which epoch, on which host and which settings it changed, and for a new run started from another
    run's weights (`start`), which. Returns the entry's index."""
    previous = run_config(paths.root) or {}  # a truncated one: one line, not a traceback
    sessions = previous.get("sessions", [])
    old, new = _flatten({k: previous.get(k) for k in config}), _flatten(config)
    session = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "from_epoch": start_epoch,
        "host": socket.gethostname(),
        "changed": {key: [old.get(key), value] for key, value in new.items() if previous and old.get(key) != value},
        **({"started_from": start} if start else {}),
    }
    write_json_atomic(paths.config, {**config, "created": previous.get("created", session["started"]),
                                     "sessions": [*sessions, session]})
    return len(sessions)


def _flatten(values: dict, prefix: str = "") -> dict:
    """{"gan": {"loss": "bce"}} → {"gan.loss": "bce"}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def collapse_suspected(diversity_ratios: list[float]) -> bool:
    """Whether the last epoch's diversity ratio (of a run's ratios, one per epoch) signals mode collapse."""
    *earlier, latest = diversity_ratios
    fell = max(earlier, default=0.0) >= COLLAPSE_RATIO
    return latest < COLLAPSE_RATIO and (fell or len(diversity_ratios) > COLLAPSE_WARMUP_EPOCHS)


def _last_diversity_ratio(paths: RunPaths) -> float | None:
    rows = read_history(paths.root)
    return float(rows[-1]["diversity_ratio"]) if rows else None


def image_grid(images: np.ndarray, side: int = GRID_SIDE) -> Image.Image:
    """A side×side grid of uint8 images, row by row."""
    tiles = images[: side * side].reshape(side, side, *images.shape[1:])
    return Image.fromarray(np.concatenate(np.concatenate(tiles, axis=1), axis=1))


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # config.BUDGET_CLOCKS


class TimeBudget(keras.callbacks.Callback):
    """Stop training after the step that uses up a time budget, counted by `clock` (seconds)."""

    def __init__(self, seconds: float, clock=time.perf_counter):
        super().__init__()
        self.seconds = seconds
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.started = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() - self.started >= self.seconds:
            self.model.stop_training = True


class StepBudget(keras.callbacks.Callback):
    """Stop training after `steps` more steps (the epoch in progress is then recorded as a partial epoch)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self.done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True


class RunArtifacts(keras.callbacks.Callback):
    """Per epoch: sample grid, history row, loss plot, diversity watch, generator, checkpoint and resume record.

    A non-finite loss stops training before anything of that epoch is saved, so the last checkpoint stays good.
    """

    def __init__(self, gan: DCGAN, paths: RunPaths, images: np.ndarray, options: TrainOptions,
                 record: ResumeRecord | None, session: int, reporter: Reporter):
        super().__init__()
        self.gan = gan
        self.paths = paths
        self.options = options
        self.session = session
        self.reporter = reporter
        self.history = read_history(paths.root)  # already trimmed to the record
        self.last_saved_epoch = record.epoch if record else 0
        self.images_seen = record.images_seen if record else 0
        self.steps_done = _record_steps(record, gan.config.batch_size) if record else 0
        self.recorded_weights = record.weights if record else None
        self.images_trained = 0
        self.bad_loss: str | None = None
        self.diversity_ratio: float | None = None
        self.warned_collapse = False
        # The same latent batch every epoch (derived from the seed), so grids show progress, not noise.
        self.grid_latents = np.random.default_rng(options.seed).standard_normal(
            (GRID_SIDE * GRID_SIDE, gan.config.latent_dim)).astype(np.float32)
        reference = np.random.default_rng(options.seed).permutation(len(images))[: GRID_SIDE * GRID_SIDE]
        self.real_diversity = mean_pairwise_distance(to_unit_range(images[reference]))
        self.writer = tf.summary.create_file_writer(str(paths.tensorboard)) if options.tensorboard else None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()
        self.steps_this_epoch = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps_this_epoch = batch + 1
        losses = {name: float(logs[name]) for name in ("d_loss", "g_loss")}
        if not all(math.isfinite(value) for value in losses.values()):
            self.bad_loss = f"loss became non-finite ({losses}) at epoch {len(self.history) + 1}, step {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.bad_loss is not None:
            return
        images_this_epoch = self.steps_this_epoch * self.gan.config.batch_size
        samples = self.gan.sample(self.grid_latents)
        diversity = mean_pairwise_distance(samples)
        diversity_ratio = diversity / self.real_diversity
        row = {
            "epoch": epoch + 1,
            **{name: float(logs[name]) for name in ("d_loss", "g_loss", "d_real", "d_fake")},
            "seconds": round(time.perf_counter() - self.epoch_started, 3),
            "images_seen": self.images_seen + images_this_epoch,
            "diversity": diversity,
            "diversity_ratio": diversity_ratio,
        }
        grid = image_grid(to_uint8(samples))
        self._save(row, grid)
        # Counted only once the epoch is recorded, so a failed save leaves the run's figures at the last record.
        self.images_trained += images_this_epoch
        self.images_seen += images_this_epoch
        self.steps_done += self.steps_this_epoch
        self.diversity_ratio = diversity_ratio
        self._log_tensorboard(row, grid)
        if not self.warned_collapse and collapse_suspected([float(past["diversity_ratio"]) for past in self.history]):
            self.warned_collapse = True
            self.reporter.warn(f"epoch {epoch + 1}: sample diversity is {diversity_ratio:.2f}× that of real images "
                               "of this class; the generator may be collapsing "
                               f"(see {self.paths.latest_samples}).")

    def _save(self, row: dict, grid: Image.Image):
        """Write the epoch's files, then its resume record; what is written before the record is trimmed away on
        resume if the record never follows, what comes after it is rewritten from it (docs/train.md)."""
        epoch = row["epoch"]
        if epoch % self.options.sample_every == 0:
            _save_png(grid, self.paths.epoch_samples(epoch))
        write_history(self.paths.root, [*self.history, row])
        with atomic_path(self.paths.generator) as temp:
            self.gan.sampler.save(temp)
        steps = self.steps_done + self.steps_this_epoch
        # A budget callback stops training in the epoch's last step, before this end-of-epoch save.
        budget_reached = bool(self.model.stop_training) or epoch == self.options.epochs
        every = self.options.snapshot_every
        if every and (steps // every > self.steps_done // every or budget_reached):
            with atomic_path(self.paths.snapshot(steps)) as temp:
                shutil.copyfile(self.paths.generator, temp)
        weights = self.paths.weights(epoch)
        save_weights(self.gan, weights)  # built in memory: HDF5 never meets a full disk (saved_models)
        record = ResumeRecord(
            epoch=epoch, images_seen=row["images_seen"], weights=weights.name,
            generator_sha256=sha256_file(self.paths.generator),
            seed_generator_state=keras.ops.convert_to_numpy(self.gan.seed_generator.state).tolist(),
            session=self.session, steps=steps, budget_reached=budget_reached)
        write_json_atomic(self.paths.record, asdict(record))
        self.history.append(row)
        self.last_saved_epoch = epoch
        if self.recorded_weights not in (None, weights.name):
            (self.paths.checkpoint / self.recorded_weights).unlink(missing_ok=True)
        self.recorded_weights = weights.name
        _save_png(grid, self.paths.latest_samples)
        plot_losses(self.paths.root, self.history)

    def _log_tensorboard(self, row: dict, grid: Image.Image):
        if self.writer is None:
            return
        with self.writer.as_default(step=row["epoch"]):
            for name in HISTORY_COLUMNS[1:]:
                tf.summary.scalar(name, row[name])
            tf.summary.image("samples", np.asarray(grid)[None], max_outputs=1)
        self.writer.flush()

def _save_png(image: Image.Image, path: Path):
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
