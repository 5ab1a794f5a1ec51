"""The run directory: the one definition of what `train` writes for a class and everyone else reads.

runs/<class>/
    checkpoint/state.json   the resume record, written last after every epoch: the one truth about the run (below)
    checkpoint/gan_epoch_NNNN.weights.h5   both networks, the moving average and both optimizers after that epoch
    config.json             every hyperparameter, the data source and checksum, package versions, and `sessions`:
                            every invocation that trained the run (when, from which epoch, what it changed)
    generator.keras         the sampling generator alone (loadable by keras.models.load_model)
    snapshots/step_NNNNNNN.keras   the sampling generator every `--snapshot-every` steps and at the end of the budget
    selection.json          `cifar-synth select`: the snapshot and latent spread chosen on the validation slice
    samples/epoch_NNN.png   10×10 grids from a fixed latent batch; samples/latest.png
    history.csv, losses.png per-epoch losses, D's outputs, seconds and sample diversity
    tb/                     TensorBoard logs (with --tensorboard)
runs/.<class>.lock(.json)   held while a process trains the class (cifar_synth.locks)
runs/dataset.json           the dataset whose classes the runs are (`Classes.to_record`); none means CIFAR-10

The resume record names the epoch, the images seen, the weights file, the generator it wrote and the state of the
latents' and augmentations' random stream. A run resumes from it and first trims everything else to it
(`trim_to_record`): history rows, sample grids and weights files of a later, unrecorded epoch are dropped. So a
process killed at any instant loses at most the epoch in progress (docs/train.md).

Importable without TensorFlow: export, `show`, the executors' live table and the benchmarks read runs through it.
"""

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from cifar_synth.classes import CIFAR10, Classes, classes_of
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, write_json_atomic

GENERATOR_FILE = "generator.keras"
CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"
HISTORY_COLUMNS = ("epoch", "d_loss", "g_loss", "d_real", "d_fake", "seconds", "images_seen",
                   "diversity", "diversity_ratio")


class RunPaths:
    """Every path of one run directory."""

    def __init__(self, run_dir: str | Path):
        run_dir = Path(run_dir)
        self.root = run_dir
        self.config = run_dir / CONFIG_FILE
        self.generator = run_dir / GENERATOR_FILE
        self.checkpoint = run_dir / "checkpoint"
        self.record = self.checkpoint / "state.json"
        self.samples = run_dir / "samples"
        self.latest_samples = self.samples / "latest.png"
        self.history = run_dir / "history.csv"
        self.losses = run_dir / "losses.png"
        self.tensorboard = run_dir / "tb"
        self.snapshots = run_dir / "snapshots"
        self.selection = run_dir / "selection.json"

    def weights(self, epoch: int) -> Path:
        return self.checkpoint / f"gan_epoch_{epoch:04d}.weights.h5"

    def epoch_samples(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:03d}.png"

    def snapshot(self, steps: int) -> Path:
        return self.snapshots / f"step_{steps:07d}.keras"

    def snapshot_steps(self) -> list[int]:
        """Steps of the run's snapshots, in order."""
        return sorted(int(path.stem.removeprefix("step_")) for path in self.snapshots.glob("step_*.keras"))


@dataclass(frozen=True)
class ResumeRecord:
    """What a run has finished: written last after every epoch, it is the truth everything else is trimmed to."""

    epoch: int
    images_seen: int
    weights: str  # file in checkpoint/ with both networks and both optimizers after `epoch`
    generator_sha256: str | None  # of the generator.keras written for `epoch`
    seed_generator_state: list[int] | None  # where the latents' and augmentations' random stream stands
    session: int  # index in config.json's "sessions" of the invocation that trained `epoch`
    steps: int | None = None  # training steps done (None in records before it was recorded)
    # Whether the session that wrote the record stopped because its budget (steps, epochs, minutes) was spent,
    # not because it was interrupted: a shared start that reached its budget is reused as it is.
    budget_reached: bool = False


# What to do about a file of a run directory that is truncated or corrupt (a disk that filled under another program,
# a copy cut short): the run's own files come back only by training it again; select's and the dataset's by rerunning.
START_OVER = "pass --fresh to `cifar-synth train` to start the run over"
RESELECT = "delete it and run `cifar-synth select` again (or export with --no-selection)"
REWRITE_GENERATOR = "run the same `cifar-synth train` command again: it rewrites it from the last checkpoint"
RESNAPSHOT = "delete it and run `cifar-synth select` again, which chooses among the snapshots left"
REDATASET = "delete it and run `cifar-synth train` with the same --data, which writes it again"


class UnreadableRunFile(UserError):
    """A file of a run directory that exists but cannot be read or parsed: one line naming it and what to do."""

    def __init__(self, path: Path, error: BaseException | str, remedy: str):
        detail = error if isinstance(error, str) else " ".join(str(error).split()) or type(error).__name__
        super().__init__(f"{path} is unreadable ({detail}); {remedy}")


def remedy(path: str | Path) -> str:
    """What to do about the unreadable file `path` of a run directory (`START_OVER` for any other of its files)."""
    path = Path(path)
    if path.name == GENERATOR_FILE:
        return REWRITE_GENERATOR
    if path.parent.name == "snapshots":
        return RESNAPSHOT
    if path.name == "selection.json":
        return RESELECT
    if path.name == DATASET_FILE:
        return REDATASET
    return START_OVER


def read_json(path: Path, missing=None):
    """The JSON file `path` of a run directory (`missing` when there is none); `UnreadableRunFile` when it is
    truncated or corrupt."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return missing
    except (OSError, ValueError) as error:
        raise UnreadableRunFile(path, error, remedy(path)) from None


def read_record(run_dir: str | Path) -> ResumeRecord | None:
    """The resume record of a run directory; None before its first epoch has finished."""
    path = RunPaths(run_dir).record
    values = read_json(path)
    if values is None:
        return None
    # Records of cifar-synth before the resume record: one weights file, no random-stream state, no sessions.
    defaults = {"weights": "gan.weights.h5", "generator_sha256": None, "seed_generator_state": None, "session": 0}
    try:
        return ResumeRecord(**{**defaults, **values})
    except TypeError as error:  # JSON, but not a record: other keys, or not an object
        raise UnreadableRunFile(path, error, START_OVER) from None


def read_config(run_dir: str | Path) -> dict:
    """A run's config.json (raises OSError or ValueError when it is missing or not JSON)."""
    return json.loads(RunPaths(run_dir).config.read_text())


def run_config(run_dir: str | Path) -> dict | None:
    """A run's config.json; None when it has none; `UnreadableRunFile` when it is truncated or not the settings of
    a run."""
    path = RunPaths(run_dir).config
    config = read_json(path)
    if config is not None and not isinstance(config, dict):
        raise UnreadableRunFile(path, f"JSON {type(config).__name__}, not an object", START_OVER)
    return config


def read_selection(run_dir: str | Path) -> dict | None:
    """A run's selection.json (`cifar-synth select`); None when it has none; `UnreadableRunFile` when it is
    truncated or lacks the choice."""
    path = RunPaths(run_dir).selection
    selection = read_json(path)
    if selection is not None and not (isinstance(selection, dict) and isinstance(selection.get("chosen"), dict)):
        raise UnreadableRunFile(path, "no chosen snapshot in it", RESELECT)
    return selection


def read_history(run_dir: str | Path) -> list[dict]:
    """The run's history rows (strings, as csv gives them); empty before the first epoch; `UnreadableRunFile`
    when a row is cut short or not numbers."""
    path = RunPaths(run_dir).history
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise UnreadableRunFile(path, error, START_OVER) from None
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        try:  # every column a number (csv gives None for those a cut-short line lacks)
            int(row["epoch"]), [float(value) for value in row.values()]
        except (KeyError, TypeError, ValueError):
            raise UnreadableRunFile(path, f"line {number} is cut short or not numbers", START_OVER) from None
    return rows


def write_history(run_dir: str | Path, rows: list[dict]) -> None:
    with atomic_path(RunPaths(run_dir).history) as temp, temp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot_losses(run_dir: str | Path, history: list[dict]) -> None:
    """losses.png: both losses per epoch."""
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
    with atomic_path(RunPaths(run_dir).losses) as temp:
        temp.write_bytes(buffer.getvalue())


def trim_to_record(run_dir: str | Path, record: ResumeRecord | None) -> None:
    """Remove what an epoch after `record` (killed before its record was written) left behind."""
    paths = RunPaths(run_dir)
    epoch = record.epoch if record else 0
    history = read_history(run_dir) if record else []  # without a record it is removed, whatever it holds
    kept = [row for row in history if int(row["epoch"]) <= epoch]
    if record is None:
        for path in (paths.generator, paths.history, paths.losses, paths.latest_samples):
            path.unlink(missing_ok=True)
    elif len(kept) < len(history):
        write_history(run_dir, kept)
        plot_losses(run_dir, kept)
        if paths.epoch_samples(epoch).exists():
            shutil.copyfile(paths.epoch_samples(epoch), paths.latest_samples)
    for grid in paths.samples.glob("epoch_*.png"):
        if int(grid.stem.removeprefix("epoch_")) > epoch:
            grid.unlink()
    for steps in paths.snapshot_steps():
        if record is None or record.steps is None or steps > record.steps:
            paths.snapshot(steps).unlink()
    if record is None or not paths.generator.exists():
        paths.selection.unlink(missing_ok=True)
    for weights in paths.checkpoint.glob("*.weights.h5"):
        if record is None or weights.name != record.weights:
            weights.unlink()
    for folder in (paths.root, paths.samples, paths.checkpoint, paths.snapshots):  # temporary files of writes a SIGKILL cut short
        for temp in folder.glob(".*.tmp*"):
            temp.unlink()


@dataclass(frozen=True)
class RunSummary:
    """How much a run has trained, from its history and settings."""

    epochs: int
    images_seen: int
    steps: int
    loop_seconds: float  # training-loop wall time of the recorded epochs
    last_rate: float | None  # real images per second of the last epoch
    last: dict  # the last history row

    @property
    def text(self) -> str:
        return f"{self.steps:,} steps, {self.epochs} epoch{'' if self.epochs == 1 else 's'}, " \
               f"{self.images_seen:,} images seen"


def run_summary(run_dir: str | Path) -> RunSummary | None:
    """The summary of a run's recorded epochs; None before its first epoch (or when its files are unreadable)."""
    try:
        history = read_history(run_dir)
        batch_size = read_config(run_dir)["gan"]["batch_size"]
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None
    if not history:
        return None
    last = history[-1]
    images = int(last["images_seen"])
    before = int(history[-2]["images_seen"]) if len(history) > 1 else 0
    seconds = float(last["seconds"])
    return RunSummary(epochs=int(last["epoch"]), images_seen=images, steps=images // batch_size,
                      loop_seconds=round(sum(float(row["seconds"]) for row in history), 1),
                      last_rate=(images - before) / seconds if seconds > 0 else None, last=last)


def trained_classes(runs_dir: str | Path) -> list[str]:
    """Classes, in label order, that have `runs_dir/<class>/generator.keras`."""
    return [name for name in runs_classes(runs_dir).names if RunPaths(Path(runs_dir) / name).generator.is_file()]


def runs_classes(runs_dir: str | Path) -> Classes:
    """The classes of the dataset the runs in `runs_dir` belong to: its dataset.json, else CIFAR-10's."""
    path = Path(runs_dir) / DATASET_FILE
    if not path.is_file():
        return CIFAR10
    return classes_of(read_json(path), str(path))


def claim_runs(runs_dir: str | Path, classes: Classes) -> None:
    """Make `runs_dir` the runs folder of `classes`' dataset, recording it there (CIFAR-10 needs no record, as before
    records); one `UserError` when the folder already belongs to another dataset's runs."""
    runs_dir = Path(runs_dir)
    recorded = (runs_dir / DATASET_FILE).is_file()
    current = runs_classes(runs_dir)
    holds_runs = runs_dir.is_dir() and any(RunPaths(child).config.is_file() for child in runs_dir.iterdir())
    if (recorded or holds_runs) and not current.same_as(classes):
        raise UserError(f"{runs_dir} holds runs of {current.dataset} ({len(current)} classes), not of "
                        f"{classes.dataset} ({len(classes)} classes): give each dataset its own --runs folder")
    if not recorded and not classes.same_as(CIFAR10):
        runs_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(runs_dir / DATASET_FILE, classes.to_record())
