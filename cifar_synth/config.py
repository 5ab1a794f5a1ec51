"""Every option of `train`, importable without TensorFlow: what to train (`GANConfig`) and how long and how to run
it (`TrainOptions`). Each checks all of its fields in `validate()`, the one place the CLI and Python callers share;
the CLI reads its defaults from here.
"""

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from cifar_synth.errors import UserError

AUGMENTATIONS = ("color", "translation", "cutout")
LOSSES = ("bce", "hinge")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")


@dataclass(frozen=True)
class GANConfig:
    """Every hyperparameter of the model and its optimisation."""

    latent_dim: int = 100
    # Narrow networks: on a CPU budget, more steps of a smaller GAN give better images than fewer of a wide one.
    g_width: int = 32  # channels of G's last hidden layer; each lower resolution doubles it
    d_width: int = 32  # channels of D's first layer; each lower resolution doubles it
    batch_size: int = 64
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    loss: str = "bce"  # "bce" (non-saturating logistic) or "hinge"
    # Spectral normalisation of every layer of D (Miyato et al. 2018): the constraint that lets D train with the
    # hinge loss without running away from G.
    spectral_norm: bool = False
    # The shared start as one class-conditional GAN (class-conditional batch norm in G, a projection discriminator);
    # each class run starts from it with its class fixed, which gives exactly today's per-class networks.
    class_aware: bool = False
    # DiffAugment policy, e.g. "color,translation,cutout"; off by default because in a few-minute budget it slowed
    # learning more than it curbed D's overfitting (docs/train.md).
    augment: str = ""
    ema_decay: float = 0.999  # 0 disables the moving average of G
    # Random horizontal flips of the real images: a free doubling of a class's images, used by every CIFAR GAN
    # code base; part of the measured recipe (docs/train.md).
    flip: bool = True
    # Weight of the classifier-guidance loss: cross-entropy of a frozen real-trained CNN toward the run's class on
    # (randomly flipped and shifted) fakes, added to G's loss. 0 disables it.
    guidance: float = 0.0
    # "mixed_bfloat16" computes in bfloat16, weights stay float32: faster steps where the CPU computes bfloat16
    # natively (docs/train.md), so "auto" picks it there; elsewhere bfloat16 is emulated, and "auto" picks float32.
    precision: str = "auto"

    # Fields that change the shape of the saved networks: a resumed run must not change them.
    ARCHITECTURE_FIELDS = ("latent_dim", "g_width", "d_width", "ema_decay", "spectral_norm", "class_aware")

    def validate(self) -> None:
        """Raise `UserError` naming the first option that cannot work."""
        for name in ("latent_dim", "g_width", "d_width", "batch_size"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("g_learning_rate", "d_learning_rate"):
            _check(name, getattr(self, name), math.isfinite(getattr(self, name)) and getattr(self, name) > 0,
                   "a positive number")
        for name in ("beta_1", "beta_2", "ema_decay"):
            _check(name, getattr(self, name), 0 <= getattr(self, name) < 1, "in [0, 1)")
        unknown = set(filter(None, self.augment.split(","))) - set(AUGMENTATIONS)
        if unknown:
            raise UserError(f"unknown augmentation {', '.join(sorted(unknown))}; valid: {', '.join(AUGMENTATIONS)}")
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        _check("guidance", self.guidance, math.isfinite(self.guidance) and self.guidance >= 0, "a number ≥ 0")
        if self.class_aware and self.spectral_norm:
            raise UserError("--class-aware folds the class projection into D's dense head, which --spectral-norm "
                            "replaces; use one or the other")

    def with_resolved_precision(self, gpu: bool, cpu_flags: set[str] | None = None) -> "GANConfig":
        """This config with "auto" precision replaced by the one to compute in: bfloat16 on a CPU that has native
        bfloat16 instructions (elsewhere it is emulated, slower than float32); float32 on a GPU, where the gain
        depends on the GPU and was not measured."""
        if self.precision != "auto":
            return self
        return replace(self, precision=resolve_precision(self.precision, gpu, cpu_flags))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        """A saved config; the fields it predates take the value every run had before them, not today's default."""
        known = {f.name for f in fields(cls)}
        return cls(**{**_BEFORE_RECORDED, **{k: v for k, v in values.items() if k in known}})


# Network fields added after runs were first saved, at the value those runs were trained with.
_BEFORE_RECORDED = {"spectral_norm": False, "class_aware": False}


# The measured recipe's budget (docs/train.md): each class trains this many steps from a shared start trained
# twice as many on all classes. Steps, unlike minutes, give the same run on every machine.
DEFAULT_STEPS = 4000
SHARED_STEPS_PER_CLASS_STEP = 2
BUDGET_CLOCKS = ("wall", "cpu")
MAX_SEED = 2**32 - 1  # numpy's legacy seeding, which keras.utils.set_random_seed uses, takes no more
# `--init-from none`: random weights.
NO_INIT = "none"
# The share of each class's training images held out as the validation slice: never trained on, it is where
# snapshots, thresholds and recipes are compared, so that the test split is scored once per headline.
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SNAPSHOT_EVERY = 1000


@dataclass(frozen=True)
class TrainOptions:
    """How long and how to run, as opposed to what to train (`GANConfig`). Validated on creation."""

    epochs: int | None = None  # total epochs
    # Total training steps of each class run; default DEFAULT_STEPS when neither `epochs` nor `minutes` is given.
    steps: int | None = None
    # Total steps of the shared start when the budget is in steps; None: SHARED_STEPS_PER_CLASS_STEP × `steps`.
    shared_steps: int | None = None
    minutes: float | None = None  # time budget of this invocation's training loop
    # What `minutes` counts: "wall" time, or "cpu" time of this process (all its threads), which a busy shared
    # machine does not eat into: a fair budget for comparing recipes.
    budget_clock: str = "wall"
    seed: int = 0
    sample_every: int = 1
    include_test: bool = False
    fresh: bool = False
    tensorboard: bool = False
    # The real-trained classifier of classifier guidance (GANConfig.guidance); None: the evaluator's cached one.
    guide: str | None = None
    # Where a new run's networks start: "shared" (the shared start, `<runs>/shared`, trained on all classes, and
    # trained first when it is missing), another run directory, or "none" (random weights). A run that has a resume
    # record resumes from it instead. None: the recipe's default, "shared".
    init_from: str | None = None
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    # Keep the sampling generator every this many steps (and at the end of the budget) for `cifar-synth select`;
    # 0 keeps none.
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY

    def __post_init__(self):
        # frozen: the one place the defaults are applied
        if self.epochs is None and self.minutes is None and self.steps is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS)
        if isinstance(self.steps, int) and self.shared_steps is None:
            object.__setattr__(self, "shared_steps", SHARED_STEPS_PER_CLASS_STEP * self.steps)
        self.validate()

    @property
    def start(self) -> str:
        """Where new runs start: "shared", "none" or a run directory."""
        return self.init_from if self.init_from is not None else "shared"

    def for_run(self, shared_start: bool) -> "TrainOptions":
        """The options of one run: the shared start trains to `shared_steps`."""
        return replace(self, steps=self.shared_steps) if shared_start and self.steps is not None else self

    def validate(self) -> None:
        """Raise `UserError` naming the first option that cannot work."""
        for name in ("epochs", "steps", "shared_steps"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if self.minutes is not None:
            _check("minutes", self.minutes, math.isfinite(self.minutes) and self.minutes > 0, "a positive number")
        _check("budget_clock", self.budget_clock, self.budget_clock in BUDGET_CLOCKS,
               f"one of {', '.join(BUDGET_CLOCKS)}")
        _check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        _check_int("sample_every", self.sample_every, minimum=1)
        _check_int("snapshot_every", self.snapshot_every, minimum=0)
        _check("validation_fraction", self.validation_fraction, 0 <= self.validation_fraction < 1, "in [0, 1)")
        if self.shared_steps is not None and self.steps is None:
            raise UserError("--shared-steps is the shared start's budget when the classes' is --steps; "
                            "with --epochs or --minutes, both train to that")


# Options whose command-line name is not the field's name with dashes; messages use the command-line names.
_FLAGS = {"g_learning_rate": "--g-lr", "d_learning_rate": "--d-lr", "beta_1": "--beta1", "beta_2": "--beta2",
          "ema_decay": "--ema"}


def _flag(name: str) -> str:
    """The command-line option of a config field."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _check(name: str, value, valid: bool, expected: str) -> None:
    if not valid:
        raise UserError(f"{_flag(name)} must be {expected}, got {value!r}")


def _check_int(name: str, value, minimum: int, maximum: int | None = None) -> None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    _check(name, value, is_int, "a whole number")
    _check(name, value, value >= minimum, f"at least {minimum}")
    if maximum is not None:
        _check(name, value, value <= maximum, f"at most {maximum}")


def resolve_precision(precision: str, gpu: bool, cpu_flags: set[str] | None = None) -> str:
    """`precision` with "auto" replaced by what to compute in: "mixed_bfloat16" on a CPU with native bfloat16
    instructions (elsewhere bfloat16 is emulated, slower than float32), else "float32"."""
    if precision != "auto":
        return precision
    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    return "mixed_bfloat16" if not gpu and flags & {"avx512_bf16", "amx_bf16"} else "float32"


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
