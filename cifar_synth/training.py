"""`cifar-synth train`: one DCGAN per class, each in its own resumable run directory.

runs/<class>/
    config.json             every hyperparameter, the data source and checksum, package versions, seed
    generator.keras         the sampling generator alone (loadable by keras.models.load_model)
    checkpoint/             both networks, both optimizers and the epoch, for resuming
    samples/epoch_NNN.png   10×10 grids from a fixed latent batch; samples/latest.png
    history.csv, losses.png per-epoch losses, D's outputs, seconds and sample diversity
    tb/                     TensorBoard logs (with --tensorboard)
"""

import csv
import io
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from rich.console import Console

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, write_json_atomic
from cifar_synth.config import GANConfig
from cifar_synth.gan import DCGAN, build_gan, make_dataset
from cifar_synth.images import to_uint8, to_unit_range
from cifar_synth.progress import RichProgress
from cifar_synth.provenance import package_versions

HISTORY_COLUMNS = ("epoch", "d_loss", "g_loss", "d_real", "d_fake", "seconds", "images_seen",
                   "diversity", "diversity_ratio")
GRID_SIDE = 10
# Generated samples whose mean pairwise distance falls below this fraction of real images' are likely collapsed.
COLLAPSE_RATIO = 0.5
# A new generator's outputs are nearly identical by construction; its diversity ratio starts near 0.1 and passed 0.5
# within 3-8 epochs in all ten classes of the quality protocol. So a low ratio warns once the run had reached a
# healthy ratio (a fall: collapse), or when it never reached one within this many epochs.
COLLAPSE_WARMUP_EPOCHS = 12


@dataclass(frozen=True)
class TrainOptions:
    """How long and how to run, as opposed to what to train (`GANConfig`)."""

    epochs: int | None = 30  # total epochs; None with `minutes` trains until the time budget is spent
    minutes: float | None = None  # time budget of this invocation's training loop
    # What `minutes` counts: "wall" time, or "cpu" time of this process (all its threads), which a busy shared
    # machine does not eat into: a fair budget for comparing recipes.
    budget_clock: str = "wall"
    seed: int = 0
    sample_every: int = 1
    include_test: bool = False
    fresh: bool = False
    quiet: bool = False
    tensorboard: bool = False
    # The real-trained classifier of classifier guidance (GANConfig.guidance); None: the evaluator's cached one.
    guide: str | None = None


@dataclass(frozen=True)
class RunResult:
    class_name: str
    run_dir: Path
    epochs_done: int
    images_per_second: float
    diversity_ratio: float | None


class RunPaths:
    def __init__(self, run_dir: Path):
        self.root = run_dir
        self.config = run_dir / "config.json"
        self.generator = run_dir / "generator.keras"
        self.checkpoint_weights = run_dir / "checkpoint" / "gan.weights.h5"
        self.checkpoint_state = run_dir / "checkpoint" / "state.json"
        self.samples = run_dir / "samples"
        self.history = run_dir / "history.csv"
        self.losses = run_dir / "losses.png"
        self.tensorboard = run_dir / "tb"


def train_classes(class_names: list[str], gan_config: GANConfig, options: TrainOptions,
                  data_path: str | Path | None, runs_dir: str | Path, console: Console) -> list[RunResult]:
    """Train each class in turn; every class is an independent job with its own run directory."""
    from cifar_synth.data import open_real_data

    data = open_real_data(data_path)
    if options.include_test:
        console.print("[yellow]Warning:[/] --include-test trains on the test split too; evaluating on that split "
                      "is then no longer honest.")
    results = []
    for class_name in class_names:
        label = CLASS_NAMES.index(class_name)
        splits = ("train", "test") if options.include_test else ("train",)
        images = np.concatenate([data.load(split, classes=[label]).images for split in splits])
        if len(images) < gan_config.batch_size:
            raise UserError(f"only {len(images)} images of class {class_name!r} in {data.source}; "
                            f"need at least one batch ({gan_config.batch_size})")
        data_info = {"source": data.source, "kind": data.kind, "sha256": data.sha256, "splits": list(splits)}
        results.append(train_class(class_name, images, data_info, gan_config, options,
                                   Path(runs_dir) / class_name, console))
    return results


def train_class(class_name: str, images: np.ndarray, data_info: dict, gan_config: GANConfig,
                options: TrainOptions, run_dir: Path, console: Console) -> RunResult:
    """Train (or resume) one class's GAN on `images` (uint8), writing every artifact under `run_dir`."""
    paths = RunPaths(run_dir)
    if options.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    start_epoch = _resumable_epoch(paths, gan_config)
    if options.epochs is not None and start_epoch >= options.epochs:
        console.print(f"{class_name}: already trained for {start_epoch} epochs (--epochs {options.epochs}); "
                      "raise --epochs to continue or pass --fresh to start over.")
        return RunResult(class_name, run_dir, start_epoch, 0.0, _last_diversity_ratio(paths))

    keras.utils.set_random_seed(options.seed + start_epoch)
    guide = _load_guide(options.guide) if gan_config.guidance > 0 else None
    gan = build_gan(gan_config, seed=options.seed, guide=guide, class_index=CLASS_NAMES.index(class_name))
    if start_epoch:
        gan.load_weights(paths.checkpoint_weights)
        # The checkpoint also restores the learning rates; the ones asked for now win.
        gan.d_optimizer.learning_rate.assign(gan_config.d_learning_rate)
        gan.g_optimizer.learning_rate.assign(gan_config.g_learning_rate)
        console.print(f"{class_name}: resuming after epoch {start_epoch} from {run_dir}")
    else:
        write_json_atomic(paths.config, {
            "class_name": class_name,
            "class_index": CLASS_NAMES.index(class_name),
            "gan": gan.config.to_dict(),  # precision "auto" resolved to what this machine computes in
            "training": asdict(options),
            "data": data_info,
            "train_images": len(images),
            "versions": package_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })

    steps_per_epoch = len(images) // gan_config.batch_size
    final_epoch = options.epochs if options.epochs is not None else 10**9
    artifacts = RunArtifacts(gan, paths, images, options, steps_per_epoch * gan_config.batch_size, console)
    budget = [TimeBudget(options.minutes * 60, BUDGET_CLOCKS[options.budget_clock])] if options.minutes else []
    progress = RichProgress(options.epochs, steps_per_epoch, title=class_name, initial_epoch=start_epoch,
                            disable=options.quiet)
    started = time.perf_counter()
    try:
        gan.fit(make_dataset(images, gan_config.batch_size, seed=options.seed + start_epoch),
                epochs=final_epoch, initial_epoch=start_epoch, steps_per_epoch=steps_per_epoch,
                callbacks=[artifacts, *budget, progress], verbose=0,
                shuffle=False)  # the dataset reshuffles itself every pass
    except KeyboardInterrupt:
        progress.progress.stop()
        console.print(f"[yellow]{class_name}: interrupted.[/] The checkpoint after epoch {artifacts.last_saved_epoch} "
                      "is kept; run the same command again to resume.")
        raise
    if artifacts.bad_loss is not None:
        raise UserError(f"{class_name}: {artifacts.bad_loss}; stopped. The last good checkpoint (epoch "
                        f"{artifacts.last_saved_epoch}) is kept in {run_dir}; try lower learning rates or --fresh.")
    seconds = time.perf_counter() - started
    images_per_second = artifacts.images_trained / seconds if seconds else 0.0
    if not options.quiet:
        console.print(f"{class_name}: {artifacts.last_saved_epoch} epochs, {images_per_second:.0f} real images/s; "
                      f"samples in {paths.samples / 'latest.png'}")
    return RunResult(class_name, run_dir, artifacts.last_saved_epoch, images_per_second, artifacts.diversity_ratio)


def _load_guide(path: str | None) -> keras.Model:
    from cifar_synth.classifier import load_classifier
    from cifar_synth.exporter import find_cached_classifier

    return load_classifier(path if path is not None else find_cached_classifier())


def _resumable_epoch(paths: RunPaths, gan_config: GANConfig) -> int:
    """The last finished epoch to resume after (0 for a new run); refuse a resume that changes the networks."""
    if not paths.checkpoint_state.exists():
        return 0
    saved = GANConfig.from_dict(json.loads(paths.config.read_text())["gan"])
    changed = [f"{name} {getattr(saved, name)} → {getattr(gan_config, name)}"
               for name in GANConfig.ARCHITECTURE_FIELDS if getattr(saved, name) != getattr(gan_config, name)]
    if changed:
        raise UserError(f"{paths.root} was trained with a different architecture ({'; '.join(changed)}); "
                        "use the same options to resume, --fresh to start over, or another --runs directory.")
    return json.loads(paths.checkpoint_state.read_text())["epoch"]


def collapse_suspected(diversity_ratios: list[float]) -> bool:
    """Whether the last epoch's diversity ratio (of a run's ratios, one per epoch) signals mode collapse."""
    *earlier, latest = diversity_ratios
    fell = max(earlier, default=0.0) >= COLLAPSE_RATIO
    return latest < COLLAPSE_RATIO and (fell or len(diversity_ratios) > COLLAPSE_WARMUP_EPOCHS)


def _last_diversity_ratio(paths: RunPaths) -> float | None:
    rows = _read_history(paths.history)
    return float(rows[-1]["diversity_ratio"]) if rows else None


def _read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean Euclidean distance between all pairs of images (as flat vectors): near zero when they collapse."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    squared = np.sum(flat**2, axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * flat @ flat.T, 0.0))
    n = len(images)
    return float(distances.sum() / (n * (n - 1)))


def image_grid(images: np.ndarray, side: int = GRID_SIDE) -> Image.Image:
    """A side×side grid of uint8 images, row by row."""
    tiles = images[: side * side].reshape(side, side, *images.shape[1:])
    return Image.fromarray(np.concatenate(np.concatenate(tiles, axis=1), axis=1))


BUDGET_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


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


class RunArtifacts(keras.callbacks.Callback):
    """Per epoch: sample grid, history row, loss plot, diversity watch, generator and resumable checkpoint.

    A non-finite loss stops training before anything of that epoch is saved, so the last checkpoint stays good.
    """

    def __init__(self, gan: DCGAN, paths: RunPaths, images: np.ndarray, options: TrainOptions,
                 images_per_epoch: int, console: Console):
        super().__init__()
        self.gan = gan
        self.paths = paths
        self.options = options
        self.images_per_epoch = images_per_epoch
        self.console = console
        self.history = _read_history(paths.history)
        self.last_saved_epoch = int(self.history[-1]["epoch"]) if self.history else 0
        self.history = self.history[: self.last_saved_epoch]
        self.images_seen = int(self.history[-1]["images_seen"]) if self.history else 0
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
        self.images_trained += images_this_epoch
        self.images_seen += images_this_epoch
        samples = self.gan.sample(self.grid_latents)
        diversity = mean_pairwise_distance(samples)
        self.diversity_ratio = diversity / self.real_diversity
        row = {
            "epoch": epoch + 1,
            **{name: float(logs[name]) for name in ("d_loss", "g_loss", "d_real", "d_fake")},
            "seconds": round(time.perf_counter() - self.epoch_started, 3),
            "images_seen": self.images_seen,
            "diversity": diversity,
            "diversity_ratio": self.diversity_ratio,
        }
        self.history.append(row)
        grid = image_grid(to_uint8(samples))
        self._save(epoch + 1, grid)
        self._log_tensorboard(row, grid)
        if not self.warned_collapse and collapse_suspected([float(past["diversity_ratio"]) for past in self.history]):
            self.warned_collapse = True
            self.console.print(f"[yellow]Warning:[/] epoch {epoch + 1}: sample diversity is {self.diversity_ratio:.2f}× "
                               "that of real images of this class; the generator may be collapsing "
                               f"(see {self.paths.samples / 'latest.png'}).")

    def _save(self, epoch: int, grid: Image.Image):
        self.paths.samples.mkdir(parents=True, exist_ok=True)
        if epoch % self.options.sample_every == 0:
            _save_png(grid, self.paths.samples / f"epoch_{epoch:03d}.png")
        _save_png(grid, self.paths.samples / "latest.png")
        with atomic_path(self.paths.history) as temp, temp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(self.history)
        _plot_losses(self.history, self.paths.losses)
        with atomic_path(self.paths.generator) as temp:
            self.gan.sampler.save(temp)
        # Weights first, then the state naming their epoch: a crash between the two resumes one epoch early.
        with atomic_path(self.paths.checkpoint_weights) as temp:
            self.gan.save_weights(temp)
        write_json_atomic(self.paths.checkpoint_state, {"epoch": epoch, "images_seen": self.images_seen})
        self.last_saved_epoch = epoch

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


def _plot_losses(history: list[dict], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [int(row["epoch"]) for row in history]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name in ("d_loss", "g_loss"):
        axis.plot(epochs, [float(row[name]) for row in history], label=name)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    with atomic_path(path) as temp:
        temp.write_bytes(buffer.getvalue())
