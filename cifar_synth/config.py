"""The GAN's hyperparameters, importable without TensorFlow (the CLI reads its defaults from here)."""

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

AUGMENTATIONS = ("color", "translation", "cutout")
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
    # DiffAugment policy, e.g. "color,translation,cutout"; off by default because in a few-minute budget it slowed
    # learning more than it curbed D's overfitting (docs/train.md).
    augment: str = ""
    ema_decay: float = 0.999  # 0 disables the moving average of G
    # Random horizontal flips of the real images: a free doubling of a class's 5,000 images, used by every CIFAR GAN
    # codebase; D then also sees mirrored fakes only through G.
    flip: bool = False
    # Weight of the classifier-guidance loss: cross-entropy of a frozen real-trained CNN toward the run's class on
    # (randomly flipped and shifted) fakes, added to G's loss. 0 disables it.
    guidance: float = 0.0
    # "mixed_bfloat16" computes in bfloat16, weights stay float32: 1.3x the real images per second of float32 on this
    # project's AVX512-BF16 CPU at one thread (docs/train.md). "auto" picks it where the CPU computes bfloat16 natively.
    precision: str = "auto"

    # Fields that change the shape of the saved networks: a resumed run must not change them.
    ARCHITECTURE_FIELDS = ("latent_dim", "g_width", "d_width", "ema_decay")

    def validate(self) -> None:
        """Raise ValueError naming an option that cannot work."""
        unknown = set(filter(None, self.augment.split(","))) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation {', '.join(sorted(unknown))}; valid: {', '.join(AUGMENTATIONS)}")
        if self.loss not in ("hinge", "bce"):
            raise ValueError(f"unknown loss {self.loss!r}; valid: hinge, bce")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.guidance < 0:
            raise ValueError(f"the guidance weight must not be negative, got {self.guidance}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"the moving-average decay must be in [0, 1), got {self.ema_decay}")

    def with_resolved_precision(self, gpu: bool, cpu_flags: set[str] | None = None) -> "GANConfig":
        """This config with "auto" precision replaced by the one to compute in: bfloat16 on a CPU that has native
        bfloat16 instructions (elsewhere it is emulated, slower than float32); float32 on a GPU, where the gain
        depends on the GPU and was not measured."""
        if self.precision != "auto":
            return self
        flags = _cpu_flags() if cpu_flags is None else cpu_flags
        native = not gpu and bool(flags & {"avx512_bf16", "amx_bf16"})
        return replace(self, precision="mixed_bfloat16" if native else "float32")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
