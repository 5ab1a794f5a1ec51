"""The evaluator's bundled CNN: a compact, fast-training 32×32 classifier, its training loop and its inference.

The network follows the fast CIFAR-10 recipes (airbench, ResNet-9 minus the residuals): a stem convolution, then
three blocks of conv → max-pool → BN → ReLU → conv → BN → ReLU, global max pooling (the feature layer whose outputs
feed the Fréchet distance, KID and diversity figures), and a scaled linear head. Training: flip and 2-pixel
reflect-pad translation done on-graph in tf.data, SGD with Nesterov momentum, linear warm-up then cosine decay,
label smoothing. Prediction averages the image and its mirror image (test-time flip).
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cifar_synth.config import PRECISIONS, resolve_precision
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
    """What the judges' config dataclasses share: named presets, the checks of widths, epochs and batch size, and the
    precision to compute in.

    A subclass is a frozen dataclass with the fields `widths`, `epochs`, `batch_size`, `precision` and `budget_name`,
    sets BUDGETS (name -> the fields that differ from the dataclass defaults) and says in `width_count()` how many
    widths its architecture takes.
    """

    BUDGETS: ClassVar[dict[str, dict]]

    def width_count(self) -> int:
        raise NotImplementedError

    def __post_init__(self):
        count = self.width_count()
        if len(self.widths) != count or any(int(w) < 1 for w in self.widths):
            raise UserError(f"widths must be {count} positive integers, got {tuple(self.widths)}")
        if self.epochs < 1:
            raise UserError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        # Resolved here, so that a report and a cache key say what the classifier computed in.
        object.__setattr__(self, "precision", resolve_precision(
            self.precision, gpu=bool(tf.config.list_physical_devices("GPU"))))

    @classmethod
    def budget(cls, name: str, **overrides):
        """The preset `name` (see BUDGETS), with any field overridden."""
        if name not in cls.BUDGETS:
            raise UserError(f"unknown budget {name!r}; choose one of {', '.join(cls.BUDGETS)}")
        return cls(**{**cls.BUDGETS[name], "budget_name": name, **overrides})

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}


WHITENED, CLASSIC = "whitened", "classic"


@dataclass(frozen=True)
class EvaluatorConfig(BudgetedConfig):
    """Architecture and training schedule of the bundled CNN; `budget(name)` gives the named presets.

    `architecture`: "classic" (a trained stem convolution and three blocks: four widths) or "whitened" (a fixed
    patch-whitening stem, then three blocks: three widths; the `fast` budget). Left out, it follows the number of
    widths.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)
    architecture: str | None = None
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.4  # peak, reached after the warm-up
    warmup_fraction: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    logit_scale: float = 0.125
    test_time_flip: bool = True
    # "auto": bfloat16 compute where the CPU has it natively (batch norm, the logits and the loss stay float32).
    precision: str = "float32"
    # Added to the patch covariance's eigenvalues before whitening (whitened architecture only; None: the default,
    # WHITENING_EPSILON). airbench's 5e-4 scales the faintest pixel-to-pixel colour differences up about 40-fold
    # against the mean; a generator's high-frequency artefacts then dominate what a synthetic-trained judge learns,
    # and it transferred poorly to real images and compressed the gains of better data (docs/evaluate.md).
    whitening_epsilon: float | None = None
    budget_name: str = "custom"

    # name -> the fields that differ from the defaults; `docs/evaluate.md` lists the measured accuracy and minutes.
    BUDGETS = {
        "quick": {"widths": (16, 32, 64, 128), "epochs": 8},
        "default": {},
        "thorough": {"widths": (48, 96, 192, 384), "epochs": 12},
        # The name reports use for the judge every figure before 2026-12 was made with (the default, unchanged).
        "classic": {},
        # 4× faster than `default`; not the default until its verdicts on synthetic data are shown to agree with
        # the classic CNN's on more sets (docs/evaluate.md).
        "fast": {"architecture": WHITENED, "widths": (64, 128, 256), "epochs": 8, "batch_size": 256,
                 "learning_rate": 0.3, "precision": "auto"},
    }

    def __post_init__(self):
        if self.architecture is None:
            object.__setattr__(self, "architecture", CLASSIC if len(self.widths) == 4 else WHITENED)
        if self.architecture == WHITENED and self.whitening_epsilon is None:
            object.__setattr__(self, "whitening_epsilon", WHITENING_EPSILON)
        if self.whitening_epsilon is not None and not (self.architecture == WHITENED and self.whitening_epsilon > 0):
            raise UserError(f"whitening_epsilon is a positive number of the {WHITENED} architecture, got "
                            f"{self.whitening_epsilon!r} for {self.architecture!r}")
        if self.architecture not in (WHITENED, CLASSIC):
            raise UserError(f"unknown architecture {self.architecture!r}; valid: {WHITENED}, {CLASSIC}")
        super().__post_init__()

    def width_count(self) -> int:
        return 4 if self.architecture == CLASSIC else 3


def build_classifier(config: EvaluatorConfig, num_classes: int) -> keras.Model:
    """Input: float32 pixels in [0, 255], (N, 32, 32, 3). Output: logits (N, num_classes), float32."""
    dtype = config.precision
    pixels = keras.Input(IMAGE_SHAPE, name="pixels")
    x = layers.Normalization(mean=PIXEL_MEAN, variance=[s * s for s in PIXEL_STD])(pixels)
    if config.architecture == CLASSIC:
        x = _conv_bn_relu(x, config.widths[0], dtype)
        block_widths, frozen_scale = config.widths[1:], False
    else:
        x = layers.ReLU(dtype=dtype)(_whitening_stem(x, dtype, config.whitening_epsilon))
        # Batch-norm scales fixed at 1 (airbench): a ReLU network is invariant to them, and training them only
        # slows the first epochs.
        block_widths, frozen_scale = config.widths, True
    for width in block_widths:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, dtype=dtype)(x)
        x = layers.MaxPooling2D(2, dtype=dtype)(x)
        x = bn_relu(x, dtype, frozen_scale)
        x = _conv_bn_relu(x, width, dtype, frozen_scale)
    features = layers.GlobalMaxPooling2D(name=FEATURE_LAYER, dtype="float32")(x)
    # A small logit scale keeps early softmax outputs soft, which lets the high learning rate work (as in airbench).
    logits = layers.Rescaling(config.logit_scale, name="logits")(layers.Dense(num_classes, use_bias=False)(features))
    return keras.Model(pixels, logits, name="cifar_synth_classifier")


# The second moments of the 2×2 patches (12 values: 2 rows × 2 columns × RGB) of CIFAR-10's 50,000 training images,
# normalised with PIXEL_MEAN and PIXEL_STD; `benchmarks/whitening_constants.py` recomputes them. A constant, like
# the pixel statistics, so that a classifier trained on synthetic images sees them through the same stem as one
# trained on real images: computed from the data it trains on, the stem would reward or punish a generator for its
# pixel statistics.
PATCH_SECOND_MOMENTS = (
    (0.98131, 0.90722, 0.79245, 0.91193, 0.83809, 0.72928, 0.89701, 0.82188, 0.71487, 0.84615, 0.77146, 0.66899),
    (0.90722, 0.99166, 0.90739, 0.83817, 0.92052, 0.84253, 0.82470, 0.90412, 0.82716, 0.77428, 0.85208, 0.77988),
    (0.79245, 0.90739, 0.99141, 0.72928, 0.84245, 0.93024, 0.71513, 0.82476, 0.91252, 0.66920, 0.77742, 0.86783),
    (0.91193, 0.83817, 0.72928, 0.98066, 0.90652, 0.79176, 0.84682, 0.77216, 0.66956, 0.89633, 0.82115, 0.71415),
    (0.83809, 0.92052, 0.84245, 0.90652, 0.99094, 0.90666, 0.77485, 0.85267, 0.78035, 0.82397, 0.90337, 0.82640),
    (0.72928, 0.84253, 0.93024, 0.79176, 0.90666, 0.99062, 0.66980, 0.77804, 0.86836, 0.71441, 0.82399, 0.91172),
    (0.89701, 0.82470, 0.71513, 0.84682, 0.77485, 0.66980, 0.97218, 0.89703, 0.78131, 0.90285, 0.82795, 0.71819),
    (0.82188, 0.90412, 0.82476, 0.77216, 0.85267, 0.77804, 0.89703, 0.97920, 0.89269, 0.82803, 0.90811, 0.82788),
    (0.71487, 0.82716, 0.91252, 0.66956, 0.78035, 0.86836, 0.78131, 0.89269, 0.97377, 0.71819, 0.82781, 0.91266),
    (0.84615, 0.77428, 0.66920, 0.89633, 0.82397, 0.71441, 0.90285, 0.82803, 0.71819, 0.97152, 0.89632, 0.78062),
    (0.77146, 0.85208, 0.77742, 0.82115, 0.90337, 0.82399, 0.82795, 0.90811, 0.82781, 0.89632, 0.97847, 0.89195),
    (0.66899, 0.77988, 0.86783, 0.71415, 0.82640, 0.91172, 0.71819, 0.82788, 0.91266, 0.78062, 0.89195, 0.97299),
)
WHITENING_EPSILON = 0.5


def whitening_kernel(epsilon: float = WHITENING_EPSILON) -> np.ndarray:
    """(2, 2, 3, 24): the 12 directions of the patch covariance each scaled by 1/sqrt(eigenvalue + epsilon) (unit
    variance for the directions well above epsilon, less for the fainter ones), and their negatives (so that the
    ReLU after it keeps both signs)."""
    eigenvalues, eigenvectors = np.linalg.eigh(np.array(PATCH_SECOND_MOMENTS, dtype=np.float64))
    scaled = eigenvectors / np.sqrt(eigenvalues + epsilon)
    return np.concatenate([scaled, -scaled], axis=1).reshape(2, 2, 3, 24).astype(np.float32)


def _whitening_stem(x, dtype: str, epsilon: float):
    """A fixed 2×2 convolution that decorrelates neighbouring pixels (airbench's stem): 32×32 → 31×31×24."""
    stem = layers.Conv2D(24, 2, use_bias=False, trainable=False, dtype=dtype, name="whitening")
    x = stem(x)
    stem.kernel.assign(whitening_kernel(epsilon))
    return x


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


def _conv_bn_relu(x, width: int, dtype: str = "float32", frozen_scale: bool = False):
    return bn_relu(layers.Conv2D(width, 3, padding="same", use_bias=False, dtype=dtype)(x), dtype, frozen_scale)


def bn_relu(x, dtype: str = "float32", frozen_scale: bool = False):
    # Momentum 0.9, not Keras' 0.99: with a few hundred steps the running statistics must catch up quickly. Batch
    # norm computes its statistics in float32 whatever the compute precision.
    x = layers.BatchNormalization(momentum=0.9, scale=not frozen_scale, dtype=dtype)(x)
    return layers.ReLU(dtype=dtype)(x)


def train_classifier(data: LabeledImages, config: EvaluatorConfig, seed: int, title: str = "training",
                     reporter: Reporter | None = None, callbacks: Sequence[keras.callbacks.Callback] = ()
                     ) -> keras.Model:
    """Train a fresh classifier on `data`; the same data, config and seed give the same weights."""
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    return fit_fresh(build_classifier, config, data, seed, _sgd, loss,
                     functools.partial(_augment, num_classes=len(data.classes)), title, reporter, callbacks)


def fit_fresh(build: Callable, config, data: LabeledImages, seed: int, optimizer_for: Callable, loss, augment: Callable,
              title: str, reporter: Reporter | None, callbacks: Sequence[keras.callbacks.Callback] = ()) -> keras.Model:
    """Seeded, deterministic training of `build(config, classes)` on `data` (a logit per class of its dataset) with
    `optimizer_for(config, total_steps)`; `callbacks` (e.g. a benchmark's timer) see the fit too."""
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
              callbacks=[progress, *callbacks])
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
