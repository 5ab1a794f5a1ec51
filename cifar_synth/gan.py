"""The per-class DCGAN: generator, discriminator, and the GAN model with one compiled training step.

Design choices for the short-budget, 5000-images-per-class regime (each is a `GANConfig` field so it can be
switched off and measured):
- DCGAN-family networks: transposed convolutions with batch norm in G, strided convolutions in D.
- Differentiable augmentation (Zhao et al., 2020) of real and fake images before D, so D cannot simply
  memorise 5000 images; its gradients still reach G because every augmentation is differentiable.
- An exponential moving average of G's weights, used for sampling: it averages out the oscillation of
  adversarial training at no extra training cost.
- Optional classifier guidance: a frozen CNN trained on real images of all classes scores a quarter of each
  fake batch, and G is also trained toward that CNN's verdict "this is my class". A per-class GAN otherwise never
  learns what tells its class apart from the others, only what its own real images look like.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cifar_synth.config import GANConfig
from cifar_synth.images import to_unit_range


def _generator_layers(config: GANConfig, normalisation) -> list:
    """G's layers in order; `normalisation()` makes each batch norm (plain, or class-conditional)."""
    w, dtype = config.g_width, config.precision
    return [
        layers.Dense(4 * 4 * 4 * w, use_bias=False, dtype=dtype),
        normalisation(),
        layers.ReLU(dtype=dtype),
        layers.Reshape((4, 4, 4 * w), dtype=dtype),
        layers.Conv2DTranspose(2 * w, 4, strides=2, padding="same", use_bias=False, dtype=dtype),  # 8×8
        normalisation(),
        layers.ReLU(dtype=dtype),
        layers.Conv2DTranspose(w, 4, strides=2, padding="same", use_bias=False, dtype=dtype),  # 16×16
        normalisation(),
        layers.ReLU(dtype=dtype),
        layers.Conv2DTranspose(3, 4, strides=2, padding="same", dtype=dtype),  # 32×32
        # Output in float32 whatever the compute precision: images are the product.
        layers.Activation("tanh", dtype="float32"),
    ]


def build_generator(config: GANConfig) -> keras.Model:
    """latent (N, latent_dim) → image (N, 32, 32, 3) in [-1, 1]."""
    return keras.Sequential(
        [keras.Input((config.latent_dim,)),
         *_generator_layers(config, lambda: layers.BatchNormalization(dtype=config.precision))],
        name="generator",
    )


@keras.saving.register_keras_serializable(package="cifar_synth")
class ClassBatchNorm(layers.Layer):
    """Class-conditional batch norm: statistics shared by all classes, a scale and shift per class (the
    conditional GANs' way of telling G the class). Fixing the class gives a plain batch norm (`fold`)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.normalise = layers.BatchNormalization(center=False, scale=False, dtype=self.dtype_policy)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        self.gamma = self.add_weight(shape=(self.num_classes, channels), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(self.num_classes, channels), initializer="zeros", name="beta")
        self.normalise.build(input_shape[0])

    def call(self, inputs, training=None):
        x, label = inputs
        x = self.normalise(x, training=training)
        shape = [-1] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
        gamma = tf.reshape(tf.cast(tf.gather(self.gamma, label), x.dtype), shape)
        beta = tf.reshape(tf.cast(tf.gather(self.beta, label), x.dtype), shape)
        return x * gamma + beta

    def fold(self, class_index: int) -> list[np.ndarray]:
        """The weights of the plain batch norm that computes this layer for one class."""
        return [keras.ops.convert_to_numpy(v) for v in (self.gamma[class_index], self.beta[class_index],
                                                        self.normalise.moving_mean, self.normalise.moving_variance)]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="cifar_synth")
class ClassProjection(layers.Layer):
    """The class term of a projection discriminator (Miyato & Koyama 2018): the inner product of D's features with
    a learned embedding of the image's class. Fixing the class makes it a fixed linear term of the features, which
    folds into D's dense head."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        # Zeros: the conditional start begins as the unconditional one and learns what tells the classes apart.
        self.embeddings = self.add_weight(shape=(self.num_classes, input_shape[0][-1]), initializer="zeros",
                                          name="embeddings")

    def call(self, inputs):
        features, label = inputs
        embedded = tf.cast(tf.gather(self.embeddings, label), features.dtype)
        return tf.cast(tf.reduce_sum(embedded * features, axis=1, keepdims=True), tf.float32)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_class_generator(config: GANConfig, num_classes: int) -> keras.Model:
    """[latent (N, latent_dim), class (N,)] → image: G with class-conditional batch norms (the class-aware shared
    start); `fold_networks` turns it into the plain G of one class."""
    latent, label = keras.Input((config.latent_dim,)), keras.Input((), dtype="int32")
    x = latent
    for layer in _generator_layers(config, lambda: ClassBatchNorm(num_classes, dtype=config.precision)):
        x = layer([x, label]) if isinstance(layer, ClassBatchNorm) else layer(x)
    return keras.Model([latent, label], x, name="class_generator")


@keras.saving.register_keras_serializable(package="cifar_synth")
class SpectralConv2D(layers.Conv2D):
    """A convolution whose kernel is divided by its largest singular value (Miyato et al. 2018), estimated by one
    power iteration per call from a persistent vector, so D is 1-Lipschitz per layer.

    The gradient flows through the division (a reparametrisation, as in the paper), unlike Keras'
    `SpectralNormalization` wrapper, which overwrites the kernel with its normalised copy.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.power_vector = self.add_weight(shape=(1, self.filters), initializer="random_normal", trainable=False,
                                            name="power_vector", dtype="float32")

    # Keras' convolutions save only their kernel and bias; the power vector is state too (a resume without it would
    # restart the iteration from a random vector).
    def save_own_variables(self, store):
        for index, variable in enumerate(self.variables):
            store[str(index)] = variable

    def load_own_variables(self, store):
        for index, variable in enumerate(self.variables):
            variable.assign(store[str(index)])

    def convolution_op(self, inputs, kernel):
        # In float32 whatever the compute precision: the singular value is a ratio of nearly equal norms.
        matrix = tf.reshape(tf.cast(kernel, tf.float32), (-1, self.filters))  # (kh·kw·in, out)
        u = self.power_vector
        v = tf.math.l2_normalize(tf.matmul(u, matrix, transpose_b=True))
        u = tf.stop_gradient(tf.math.l2_normalize(tf.matmul(v, matrix)))
        v = tf.stop_gradient(v)
        self.power_vector.assign(u)
        sigma = tf.reduce_sum(tf.matmul(v, matrix) * u)
        return super().convolution_op(inputs, kernel / tf.cast(sigma, kernel.dtype))


def _discriminator_body(config: GANConfig) -> list:
    """D's convolutions, image → 4×4 features."""
    w, dtype = config.d_width, config.precision
    conv = SpectralConv2D if config.spectral_norm else layers.Conv2D
    return [
        conv(w, 4, strides=2, padding="same", dtype=dtype),  # 16×16
        layers.LeakyReLU(0.2, dtype=dtype),
        conv(2 * w, 4, strides=2, padding="same", dtype=dtype),  # 8×8
        layers.LeakyReLU(0.2, dtype=dtype),
        conv(4 * w, 4, strides=2, padding="same", dtype=dtype),  # 4×4
        layers.LeakyReLU(0.2, dtype=dtype),
    ]


def build_discriminator(config: GANConfig) -> keras.Model:
    """image (N, 32, 32, 3) → one logit per image. No batch norm: real and fake batches pass separately.

    With `config.spectral_norm` every layer is spectrally normalised and the last one is a 4×4 convolution (the same
    map as the dense layer on the flattened 4×4 features, in a form the normalisation applies to)."""
    head = ([SpectralConv2D(1, 4, dtype="float32"), layers.Flatten(dtype="float32")] if config.spectral_norm
            else [layers.Flatten(dtype=config.precision), layers.Dense(1, dtype="float32")])  # float32: a stable loss
    return keras.Sequential([keras.Input((32, 32, 3)), *_discriminator_body(config), *head], name="discriminator")


def build_projection_discriminator(config: GANConfig, num_classes: int) -> keras.Model:
    """[image, class] → logit: D plus a class projection of its features (the class-aware shared start)."""
    image, label = keras.Input((32, 32, 3)), keras.Input((), dtype="int32")
    x = image
    for layer in _discriminator_body(config):
        x = layer(x)
    features = layers.Flatten(dtype=config.precision)(x)
    logits = layers.Add(dtype="float32")([layers.Dense(1, dtype="float32")(features),
                                          ClassProjection(num_classes, dtype="float32")([features, label])])
    return keras.Model([image, label], logits, name="projection_discriminator")


def fold_networks(conditional: keras.Model, plain: keras.Model, class_index: int) -> None:
    """Give `plain` (a per-class G or D) the weights that compute `conditional` (the class-aware G or D) with its
    class fixed to `class_index`: per-class scales and shifts become batch-norm weights, the class projection is
    added to D's dense head. Exact: both compute the same function of the image or latent."""
    conditional_layers = [layer for layer in conditional.layers
                          if not isinstance(layer, (layers.InputLayer, ClassProjection, layers.Add))]
    projection = next((layer for layer in conditional.layers if isinstance(layer, ClassProjection)), None)
    for source, target in zip(conditional_layers, plain.layers, strict=True):
        if isinstance(source, ClassBatchNorm):
            target.set_weights(source.fold(class_index))
        elif isinstance(source, layers.Dense) and projection is not None:
            kernel, bias = source.get_weights()
            target.set_weights([kernel + keras.ops.convert_to_numpy(projection.embeddings[class_index])[:, None],
                                bias])
        else:
            target.set_weights(source.get_weights())


def diff_augment(images: tf.Tensor, policy: str, seed: keras.random.SeedGenerator) -> tf.Tensor:
    """Differentiable augmentation with a fresh random draw per image (DiffAugment's colour/translation/cutout)."""
    for name in filter(None, policy.split(",")):
        images = _AUGMENTATIONS[name](images, seed)
    return images


def _color(x, seed):
    n = tf.shape(x)[0]
    x = x + (keras.random.uniform((n, 1, 1, 1), seed=seed) - 0.5)  # brightness
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (keras.random.uniform((n, 1, 1, 1), seed=seed) * 2.0) + mean  # saturation
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (keras.random.uniform((n, 1, 1, 1), seed=seed) + 0.5) + mean  # contrast


def _translation(x, seed, ratio=0.125):
    """Shift each image by up to 1/8 of its size, filling with zeros, by gathering rows then columns."""
    n, size = tf.shape(x)[0], x.shape[1]
    shift = int(size * ratio + 0.5)

    def gather_shifted(t):
        offsets = keras.random.randint((n, 1), -shift, shift + 1, seed=seed)
        index = tf.clip_by_value(tf.range(size)[None, :] + offsets + 1, 0, size + 1)
        padded = tf.pad(t, [[0, 0], [1, 1], [0, 0], [0, 0]])
        return tf.gather(padded, index, batch_dims=1)

    x = gather_shifted(x)
    return tf.transpose(gather_shifted(tf.transpose(x, [0, 2, 1, 3])), [0, 2, 1, 3])


def _cutout(x, seed, ratio=0.5):
    """Zero a random square of half the image size in each image."""
    n, size = tf.shape(x)[0], x.shape[1]
    half = int(size * ratio + 0.5) // 2
    centre = keras.random.randint((n, 2), 0, size, seed=seed)
    coords = tf.range(size)[None, :]
    inside_rows = tf.abs(coords - centre[:, :1]) < half
    inside_cols = tf.abs(coords - centre[:, 1:]) < half
    mask = tf.logical_not(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * tf.cast(mask, x.dtype)[..., None]


_AUGMENTATIONS = {"color": _color, "translation": _translation, "cutout": _cutout}


# Fakes per step that the guide scores: the guide costs several times D per image, and a quarter of the batch
# already gives G the class signal.
GUIDED_FRACTION = 4


class DCGAN(keras.Model):
    """Generator and discriminator trained together by one compiled `train_step` per batch of real images.

    `guide` (with `class_index`): a frozen real-trained classifier of pixels in [0, 255] → logits over the ten
    classes, used when `config.guidance` > 0. `num_classes`: the networks are class-conditional (the class-aware
    shared start, `config.class_aware`), and batches are (images, labels).
    """

    def __init__(self, config: GANConfig, seed: int = 0, guide: keras.Model | None = None,
                 class_index: int | None = None, num_classes: int | None = None, **kwargs):
        super().__init__(**kwargs)
        config.validate()
        if config.guidance > 0 and (guide is None or class_index is None):
            raise ValueError("classifier guidance needs a guide classifier and the class index")
        config = config.with_resolved_precision(gpu=bool(tf.config.list_physical_devices("GPU")))
        self.config = config
        self.num_classes = num_classes
        def make_generator():
            return build_class_generator(config, num_classes) if num_classes else build_generator(config)

        self.generator = make_generator()
        self.discriminator = (build_projection_discriminator(config, num_classes) if num_classes
                              else build_discriminator(config))
        self.ema_generator = make_generator() if config.ema_decay > 0 else None
        if self.ema_generator is not None:
            self.ema_generator.set_weights(self.generator.get_weights())
        self.seed_generator = keras.random.SeedGenerator(seed)
        if config.guidance > 0:
            guide.trainable = False
            # Set past Keras' attribute tracking: the frozen guide is an input of training, not part of the GAN, so
            # it stays out of the checkpoint (a run resumes with or without guidance).
            object.__setattr__(self, "_guide", guide)
        self.class_index = class_index
        tracked = ("d_loss", "g_loss", "d_real", "d_fake") + (("guide_loss",) if config.guidance > 0 else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}
        # Marked built so that save_weights/load_weights see every variable (the resume trap).
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def sampler(self) -> keras.Model:
        """The generator to sample from: the moving average when enabled."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def compile(self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built now, not at the first step, so a checkpoint restored before training restores their state.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def _d_losses(self, real_logits, fake_logits):
        if self.config.loss == "hinge":
            d_loss = tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
        else:
            d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))
        return d_loss

    def _g_loss(self, fake_logits):
        if self.config.loss == "hinge":
            return -tf.reduce_mean(fake_logits)
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))

    def _latents(self, n):
        return keras.random.normal((n, self.config.latent_dim), seed=self.seed_generator)

    def _augment(self, images):
        return diff_augment(images, self.config.augment, self.seed_generator)

    def _flip(self, images):
        mirrored = keras.random.uniform((tf.shape(images)[0], 1, 1, 1), seed=self.seed_generator) < 0.5
        return tf.where(mirrored, tf.reverse(images, axis=[2]), images)

    def _guidance_loss(self, fake_images):
        """Cross-entropy of the guide toward this run's class, on randomly flipped and shifted fakes (so G cannot
        win with a pixel pattern the guide reads at one exact position)."""
        fakes = tf.cast(fake_images[: tf.shape(fake_images)[0] // GUIDED_FRACTION], tf.float32)
        pixels = (_translation(self._flip(fakes), self.seed_generator) + 1.0) * 127.5
        logits = tf.cast(self._guide(pixels, training=False), tf.float32)
        labels = tf.fill([tf.shape(logits)[0]], self.class_index)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    def _generate(self, latents, labels):
        return self.generator([latents, labels] if self.num_classes else latents, training=True)

    def _discriminate(self, images, labels):
        images = self._augment(images)
        return self.discriminator([images, labels] if self.num_classes else images, training=True)

    def train_step(self, data):
        # Class-conditional: the fakes of a step are of the real batch's classes, so both halves of D's batch and
        # G's batch statistics see the same class mix.
        real_images, labels = data if self.num_classes else (data, None)
        n = tf.shape(real_images)[0]
        if self.config.flip:
            real_images = self._flip(real_images)

        with tf.GradientTape() as tape:
            fake_images = self._generate(self._latents(n), labels)
            real_logits = self._discriminate(real_images, labels)
            fake_logits = self._discriminate(fake_images, labels)
            d_loss = self._d_losses(real_logits, fake_logits)
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(d_loss, d_vars), d_vars)

        with tf.GradientTape() as tape:
            fake_images = self._generate(self._latents(n), labels)
            g_loss = self._g_loss(self._discriminate(fake_images, labels))
            total_g_loss = g_loss
            if self.config.guidance > 0:
                guide_loss = self._guidance_loss(fake_images)
                self.trackers["guide_loss"].update_state(guide_loss)
                total_g_loss = g_loss + self.config.guidance * guide_loss
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(total_g_loss, g_vars), g_vars)

        if self.ema_generator is not None:
            self._update_ema()

        self.trackers["d_loss"].update_state(d_loss)
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["d_real"].update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.trackers["d_fake"].update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _update_ema(self):
        # Warm-up: early on the average follows the live weights closely, so short runs still benefit.
        step = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        for average, live in zip(self.ema_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * live)

    def sample(self, latents: np.ndarray) -> np.ndarray:
        """Generated images in [-1, 1] for the given latent vectors (class-conditional: the classes in equal
        consecutive blocks, one row of a 10×10 grid per class of CIFAR-10)."""
        if self.num_classes:
            labels = (np.arange(len(latents)) * self.num_classes // len(latents)).astype("int32")
            return keras.ops.convert_to_numpy(self.sampler([latents, labels], training=False))
        return keras.ops.convert_to_numpy(self.sampler(latents, training=False))

    def start_from(self, donor: "DCGAN") -> None:
        """Give G, D and G's moving average the weights of `donor`'s; a class-conditional donor is folded into
        this GAN's class (`class_index`)."""
        for network, trained in ((self.generator, donor.generator), (self.discriminator, donor.discriminator),
                                 (self.ema_generator, donor.ema_generator)):
            if network is None:
                continue
            if donor.num_classes and not self.num_classes:
                fold_networks(trained, network, self.class_index)
            else:
                network.set_weights(trained.get_weights())


def build_gan(config: GANConfig, seed: int = 0, guide: keras.Model | None = None,
              class_index: int | None = None, num_classes: int | None = None) -> DCGAN:
    """A compiled DCGAN with Adam for both networks, ready for `fit`; class-conditional with `num_classes`."""
    gan = DCGAN(config, seed=seed, guide=guide, class_index=class_index, num_classes=num_classes)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(config.d_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2),
        g_optimizer=keras.optimizers.Adam(config.g_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2),
    )
    return gan


def make_dataset(images: np.ndarray, batch_size: int, seed: int = 0,
                 labels: np.ndarray | None = None) -> tf.data.Dataset:
    """An endless, reshuffled-every-pass stream of float batches in [-1, 1] from uint8 images (with `labels`:
    (images, labels) batches)."""
    tensors = to_unit_range(images) if labels is None else (to_unit_range(images), labels.astype("int32"))
    return (
        tf.data.Dataset.from_tensor_slices(tensors)
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
