"""The evaluator's bundled CNN: a compact, fast-training 32×32 classifier, its training loop and its inference.

The network follows the fast CIFAR-10 recipes (airbench, ResNet-9 minus the residuals): a stem convolution, then
three blocks of conv → max-pool → BN → ReLU → conv → BN → ReLU, global max pooling (the feature layer whose outputs
feed the Fréchet distance, KID and diversity figures), and a scaled linear head. Training: flip and 2-pixel
reflect-pad translation done on-graph in tf.data, SGD with Nesterov momentum, linear warm-up then cosine decay,
label smoothing. Prediction averages the image and its mirror image (test-time flip).
"""

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cifar_synth.errors import UserError
from cifar_synth.images import IMAGE_SHAPE, LabeledImages
from cifar_synth.progress import RichProgress
from cifar_synth.reporter import Reporter
from cifar_synth.saved_models import load_model

FEATURE_LAYER = "features"
# Per-channel pixel statistics of the CIFAR-10 training split, fixed so that a model trained on synthetic images
# sees its inputs on the same scale as one trained on real images.
PIXEL_MEAN = (125.3, 123.0, 113.9)
PIXEL_STD = (63.0, 62.1, 66.7)
_PREDICT_BATCH = 1000
_TRANSLATE = 2  # pixels of random translation each way


class BudgetedConfig:
    """What the judges' config dataclasses share: named presets and the checks of widths, epochs and batch size.

    A subclass is a frozen dataclass with the fields `widths`, `epochs`, `batch_size` and `budget_name`, and sets
    BUDGETS (name -> (widths, epochs)) and WIDTHS (what the widths are, for the error message).
    """

    BUDGETS: ClassVar[dict[str, tuple[tuple[int, ...], int]]]
    WIDTHS: ClassVar[str]

    def __post_init__(self):
        count = len(next(iter(self.BUDGETS.values()))[0])
        if len(self.widths) != count or any(int(w) < 1 for w in self.widths):
            raise UserError(f"widths must be {self.WIDTHS}, got {self.widths}")
        if self.epochs < 1:
            raise UserError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {self.batch_size}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    @classmethod
    def budget(cls, name: str, **overrides):
        """The preset `name` (quick, default, thorough), with any field overridden."""
        if name not in cls.BUDGETS:
            raise UserError(f"unknown budget {name!r}; choose one of {', '.join(cls.BUDGETS)}")
        widths, epochs = cls.BUDGETS[name]
        return cls(**{"widths": widths, "epochs": epochs, "budget_name": name, **overrides})

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}


@dataclass(frozen=True)
class EvaluatorConfig(BudgetedConfig):
    """Architecture and training schedule of the bundled CNN; `budget(name)` gives the named presets."""

    widths: tuple[int, int, int, int] = (32, 64, 128, 256)  # stem, then the three blocks
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.4  # peak, reached after the warm-up
    warmup_fraction: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    logit_scale: float = 0.125
    test_time_flip: bool = True
    budget_name: str = "custom"

    # name -> (widths, epochs); `docs/evaluate.md` lists the measured accuracy and minutes of each.
    BUDGETS = {
        "quick": ((16, 32, 64, 128), 8),
        "default": ((32, 64, 128, 256), 10),
        "thorough": ((48, 96, 192, 384), 12),
    }
    WIDTHS = "four positive integers (stem and three blocks)"


def build_classifier(config: EvaluatorConfig, num_classes: int) -> keras.Model:
    """Input: float32 pixels in [0, 255], (N, 32, 32, 3). Output: logits (N, num_classes)."""
    pixels = keras.Input(IMAGE_SHAPE, name="pixels")
    x = layers.Normalization(mean=PIXEL_MEAN, variance=[s * s for s in PIXEL_STD])(pixels)
    x = _conv_bn_relu(x, config.widths[0])
    for width in config.widths[1:]:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = layers.MaxPooling2D(2)(x)
        x = bn_relu(x)
        x = _conv_bn_relu(x, width)
    features = layers.GlobalMaxPooling2D(name=FEATURE_LAYER)(x)
    # A small logit scale keeps early softmax outputs soft, which lets the high learning rate work (as in airbench).
    logits = layers.Rescaling(config.logit_scale, name="logits")(layers.Dense(num_classes, use_bias=False)(features))
    return keras.Model(pixels, logits, name="cifar_synth_classifier")


def load_classifier(path: str | Path, num_classes: int) -> keras.Model:
    """A saved classifier built like `build_classifier` (pixels 0–255 in, a logit per class of the dataset out, a
    `features` layer)."""
    model = load_model(path, "classifier")
    layer_names = {layer.name for layer in model.layers}
    if model.input_shape != (None, *IMAGE_SHAPE) or model.output_shape != (None, num_classes) \
            or FEATURE_LAYER not in layer_names:
        raise UserError(
            f"{path}: expected a classifier like the evaluator's, with input (None, 32, 32, 3), output "
            f"(None, {num_classes}) and a layer named '{FEATURE_LAYER}'; got input {model.input_shape}, "
            f"output {model.output_shape}")
    return model


def _conv_bn_relu(x, width: int):
    return bn_relu(layers.Conv2D(width, 3, padding="same", use_bias=False)(x))


def bn_relu(x):
    # Momentum 0.9, not Keras' 0.99: with a few hundred steps the running statistics must catch up quickly.
    return layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))


def train_classifier(data: LabeledImages, config: EvaluatorConfig, seed: int, title: str = "training",
                     reporter: Reporter | None = None) -> keras.Model:
    """Train a fresh classifier on `data`; the same data, config and seed give the same weights."""
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    return fit_fresh(build_classifier, config, data, seed, _sgd, loss,
                     functools.partial(_augment, num_classes=len(data.classes)), title, reporter)


def fit_fresh(build: Callable, config, data: LabeledImages, seed: int, optimizer_for: Callable, loss, augment: Callable,
              title: str, reporter: Reporter | None) -> keras.Model:
    """Seeded, deterministic training of `build(config, classes)` on `data` (a logit per class of its dataset) with
    `optimizer_for(config, total_steps)`."""
    keras.utils.set_random_seed(seed)
    # Process-wide. On: a figure someone reruns must come out the same, and on the CPU it costs no measurable time
    # (docs/evaluate.md).
    tf.config.experimental.enable_op_determinism()
    model = build(config, len(data.classes))
    batch_size = min(config.batch_size, len(data))
    steps_per_epoch = len(data) // batch_size
    model.compile(optimizer=optimizer_for(config, steps_per_epoch * config.epochs), loss=loss, metrics=["accuracy"])
    progress = RichProgress(config.epochs, steps_per_epoch, title=title, reporter=reporter)
    model.fit(training_dataset(data, batch_size, seed, augment), epochs=config.epochs, verbose=0, shuffle=False,
              callbacks=[progress])
    return model


def _sgd(config: EvaluatorConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum: linear warm-up, then cosine decay to 0."""
    warmup_steps = int(total_steps * config.warmup_fraction)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(total_steps - warmup_steps, 1), warmup_target=config.learning_rate, warmup_steps=warmup_steps)
    optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True,
                                     weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
    return optimizer


def training_dataset(data: LabeledImages, batch_size: int, seed: int, augment: Callable) -> tf.data.Dataset:
    """Shuffled batches, each passed with its own stateless seed through `augment((images, labels), seed)` on-graph.

    Full batches only: a smaller last batch would make Keras trace the training step a second time, which costs more
    than the few images it holds (they are reshuffled into other batches next epoch).
    """
    images = tf.data.Dataset.from_tensor_slices((data.images, data.labels))
    batches = (images.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size, drop_remainder=True))
    # One stateless seed per batch, different every epoch, so augmentation is reproducible yet not repeated.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return (tf.data.Dataset.zip(batches, seeds)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def _augment(batch: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor, num_classes: int):
    """Per image: random horizontal flip, random translation by up to 2 pixels (reflect padding); one-hot labels."""
    images, labels = batch
    flip_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    images = tf.cast(images, tf.float32)
    size = tf.shape(images)[0]
    flip = tf.random.stateless_uniform([size, 1, 1, 1], flip_seed) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    padded = tf.pad(images, [[0, 0], [_TRANSLATE, _TRANSLATE], [_TRANSLATE, _TRANSLATE], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([size, 2], shift_seed, 0, 2 * _TRANSLATE + 1, dtype=tf.int32)
    grid = tf.range(IMAGE_SHAPE[0])
    rows = offsets[:, :1] + grid  # (N, 32) source row of each output row
    cols = offsets[:, 1:] + grid
    images = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return images, tf.one_hot(labels, num_classes)


def make_predictor(model: keras.Model, test_time_flip: bool = True) -> Callable[[np.ndarray], tuple]:
    """A function: uint8 images → (class probabilities (N, classes), penultimate-layer features (N, D)).

    With `test_time_flip` the probabilities average the image and its mirror image; features are of the image only.
    Traced once, so calling it on several image sets costs no retracing.
    """
    both = keras.Model(model.input, [model.output, model.get_layer(FEATURE_LAYER).output])

    @tf.function(input_signature=[tf.TensorSpec((None, *IMAGE_SHAPE), tf.uint8)])
    def run(batch):
        pixels = tf.cast(batch, tf.float32)
        logits, features = both(pixels, training=False)
        probabilities = tf.nn.softmax(logits)
        if test_time_flip:
            flipped, _ = both(tf.reverse(pixels, axis=[2]), training=False)
            probabilities = (probabilities + tf.nn.softmax(flipped)) / 2
        return probabilities, features

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = [run(images[start:start + _PREDICT_BATCH]) for start in range(0, len(images), _PREDICT_BATCH)]
        return np.concatenate([p.numpy() for p, _ in outputs]), np.concatenate([f.numpy() for _, f in outputs])

    return predict
