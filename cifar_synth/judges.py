"""The judges of `cifar-synth evaluate` (`JUDGES`), and the second judge: a ResNet unlike the bundled CNN.

When a classifier takes part in making the data (the export's classifier filter), CAS measured with a CNN of the same
kind flatters the data: the filter keeps what that kind of network finds convincing. This judge shares neither
architecture nor training recipe with `cifar_synth.classifier`:

- a pre-activation ResNet (He et al. 2016, "Identity Mappings"): a conv stem, three stages of residual blocks
  (BN → ReLU → conv, twice, around an identity or 1×1 projection shortcut), strided convolutions instead of pooling,
  global *average* pooling, a plain linear head;
- AdamW with decoupled weight decay, a one-cycle learning rate (linear up, then linear down to 0), batch 256, no
  label smoothing;
- random crop from a zero-padded image, horizontal flip and cutout (DeVries & Taylor 2017), no test-time flip.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import layers

from cifar_synth.judge_names import CNN, RESNET
from cifar_synth.classifier import (FEATURE_LAYER, PIXEL_MEAN, PIXEL_STD, BudgetedConfig,
                                   EvaluatorConfig, bn_relu, fit_fresh, train_classifier)
from cifar_synth.images import IMAGE_SHAPE, LabeledImages
from cifar_synth.reporter import Reporter


@dataclass(frozen=True)
class JudgeConfig(BudgetedConfig):
    """Architecture and training schedule of the ResNet judge; `budget(name)` gives the named presets."""

    widths: tuple[int, int, int] = (32, 64, 128)  # the three stages; the stem has the first stage's width
    blocks_per_stage: int = 1
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 3e-3  # peak of the one-cycle schedule
    warmup_fraction: float = 0.3
    weight_decay: float = 0.05
    crop_padding: int = 4
    cutout: int = 8  # side of the square set to the mean pixel, 0 for none
    test_time_flip: bool = False
    # "auto": bfloat16 compute where the CPU has it natively (batch norm, the logits and the loss stay float32).
    precision: str = "float32"
    budget_name: str = "custom"

    # name -> the fields that differ from the defaults; `docs/evaluate.md` lists the measured accuracy and minutes of
    # each, chosen so that the judge costs about as much as the bundled CNN at the same budget.
    BUDGETS = {
        "quick": {"widths": (16, 32, 64), "epochs": 8},
        "default": {},
        "thorough": {"widths": (48, 96, 192), "epochs": 12},
        "classic": {},
        "fast": {"precision": "auto"},  # beside the CNN's `fast` budget: bfloat16 made its epoch 1.4× faster
    }

    def width_count(self) -> int:
        return 3


def build_judge(config: JudgeConfig, num_classes: int) -> keras.Model:
    """Input: float32 pixels in [0, 255], (N, 32, 32, 3). Output: logits (N, num_classes), float32; layer `features`
    is the pooling."""
    dtype = config.precision
    pixels = keras.Input(IMAGE_SHAPE, name="pixels")
    x = layers.Normalization(mean=PIXEL_MEAN, variance=[s * s for s in PIXEL_STD])(pixels)
    x = layers.Conv2D(config.widths[0], 3, padding="same", use_bias=False, dtype=dtype)(x)
    for stage, width in enumerate(config.widths):
        for block in range(config.blocks_per_stage):
            x = _preact_block(x, width, 2 if stage > 0 and block == 0 else 1, dtype)
    x = bn_relu(x, dtype)
    features = layers.GlobalAveragePooling2D(name=FEATURE_LAYER, dtype="float32")(x)
    logits = layers.Dense(num_classes, name="logits")(features)
    return keras.Model(pixels, logits, name="cifar_synth_resnet_judge")


def _preact_block(x, width: int, stride: int, dtype: str):
    activated = bn_relu(x, dtype)
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
        shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False, dtype=dtype)(activated)
    y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, dtype=dtype)(activated)
    y = layers.Conv2D(width, 3, padding="same", use_bias=False, dtype=dtype)(bn_relu(y, dtype))
    return layers.Add(dtype=dtype)([shortcut, y])


@keras.saving.register_keras_serializable(package="cifar_synth")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear rise from 0 to `peak` over `warmup_steps`, then linear fall to 0 at `total_steps` (Smith 2018)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rise = step / max(self.warmup_steps, 1)
        fall = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * tf.clip_by_value(tf.minimum(rise, fall), 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def train_judge(data: LabeledImages, config: JudgeConfig, seed: int, title: str = "training",
                reporter: Reporter | None = None, callbacks: Sequence[keras.callbacks.Callback] = ()) -> keras.Model:
    """Train a fresh judge on `data`; the same data, config and seed give the same weights."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return fit_fresh(build_judge, config, data, seed, _adamw, loss, _augmentation(config.crop_padding, config.cutout),
                     title, reporter, callbacks)


def _adamw(config: JudgeConfig, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = OneCycle(config.learning_rate, int(total_steps * config.warmup_fraction), total_steps)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def _augmentation(padding: int, cutout: int):
    """Per image: flip, a random 32×32 crop of the image zero-padded by `padding`, a `cutout`-pixel mean square."""
    size = IMAGE_SHAPE[0]
    mean = tf.constant(PIXEL_MEAN, tf.float32)

    def augment(batch: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor):
        images, labels = batch
        flip_seed, crop_seed, cut_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        images = tf.cast(images, tf.float32)
        count = tf.shape(images)[0]
        flip = tf.random.stateless_uniform([count, 1, 1, 1], flip_seed) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
        padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        offsets = tf.random.stateless_uniform([count, 2], crop_seed, 0, 2 * padding + 1, dtype=tf.int32)
        grid = tf.range(size)
        images = tf.gather(tf.gather(padded, offsets[:, :1] + grid, axis=1, batch_dims=1),
                           offsets[:, 1:] + grid, axis=2, batch_dims=1)
        if cutout:
            # The square's centre may lie anywhere in the image, so near the edges only part of it is cut.
            centres = tf.random.stateless_uniform([count, 2], cut_seed, 0, size, dtype=tf.int32)
            inside_rows = tf.abs(grid[None, :] - centres[:, :1]) * 2 < cutout  # (N, 32)
            inside_cols = tf.abs(grid[None, :] - centres[:, 1:]) * 2 < cutout
            square = tf.logical_and(inside_rows[:, :, None], inside_cols[:, None, :])[..., None]
            images = tf.where(square, mean, images)
        return images, labels

    return augment


@dataclass(frozen=True)
class Judge:
    """A classifier family the evaluator can train on real and on synthetic images and test on real ones."""

    name: str
    description: str
    config_class: type  # with .budget(name, **overrides), .to_dict() and a test_time_flip field
    # (data, config, seed, title=..., reporter=..., callbacks=...) -> model with a `features` layer
    train: Callable[..., keras.Model]


JUDGES = {
    CNN: Judge(CNN, "Bundled evaluator CNN (airbench-style VGG, SGD-Nesterov, cosine, label smoothing, "
                        "flip + translate, test-time flip)", EvaluatorConfig, train_classifier),
    RESNET: Judge(RESNET, "ResNet second judge (pre-activation ResNet, AdamW, one-cycle, crop + flip + cutout)",
                    JudgeConfig, train_judge),
}
