"""The GAN's hyperparameters, importable without TensorFlow (the CLI reads its defaults from here)."""

from dataclasses import asdict, dataclass, fields

AUGMENTATIONS = ("color", "translation", "cutout")


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
    # "mixed_bfloat16" computes in bfloat16 (fast on CPUs with AVX512-BF16/AMX and recent GPUs); weights stay float32.
    precision: str = "float32"

    # Fields that change the shape of the saved networks: a resumed run must not change them.
    ARCHITECTURE_FIELDS = ("latent_dim", "g_width", "d_width", "ema_decay")

    def validate(self) -> None:
        """Raise ValueError naming an option that cannot work."""
        unknown = set(filter(None, self.augment.split(","))) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation {', '.join(sorted(unknown))}; valid: {', '.join(AUGMENTATIONS)}")
        if self.loss not in ("hinge", "bce"):
            raise ValueError(f"unknown loss {self.loss!r}; valid: hinge, bce")
        if self.precision not in ("float32", "mixed_bfloat16"):
            raise ValueError(f"unknown precision {self.precision!r}; valid: float32, mixed_bfloat16")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"the moving-average decay must be in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
