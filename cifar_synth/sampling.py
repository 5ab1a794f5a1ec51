"""Sampling a class's trained generator: its latent stream, loading it, and generating images in batches.

The one definition of which images a generator gives for a seed, shared by `export` (every image), `show` and the
dataset card's sample sheet (the first images an export holds). TensorFlow is imported only to load a generator.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.errors import UserError
from cifar_synth.images import IMAGE_SHAPE, to_uint8
from cifar_synth.runs import RunPaths

LATENT_RECIPE = (
    "latents of class `label` = numpy.random.default_rng([seed, label]).standard_normal((count, latent_dim), "
    "dtype=numpy.float32); row i gives image i (drawn in batches, which yields the same rows for any batch size)"
)


def latent_batches(seed: int, label: int, count: int, latent_dim: int, batch_size: int) -> Iterator[np.ndarray]:
    """The latents in batches; numpy's Generator draws sequentially, so the rows do not depend on batch_size."""
    rng = np.random.default_rng([seed, label])
    for start in range(0, count, batch_size):
        yield rng.standard_normal((min(batch_size, count - start), latent_dim), dtype=np.float32)


def load_generator(path: Path):
    """The Keras generator at `path` and its latent size."""
    import keras

    try:
        generator = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a corrupt or foreign file
        raise UserError(f"cannot load generator {path}: {error}") from None
    shape = getattr(generator, "input_shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[1], int)):
        raise UserError(f"{path}: expected a generator with one input of shape (batch, latent_dim), got {shape}")
    return generator, shape[1]


def generate(generator, latents: np.ndarray, path: Path) -> np.ndarray:
    """The generator's uint8 images of `latents`; `path` names the generator in the error for a wrong shape."""
    output = np.asarray(generator(latents, training=False))
    if output.shape[1:] != IMAGE_SHAPE:
        raise UserError(f"{path}: generator output has shape {output.shape[1:]}, expected {IMAGE_SHAPE}")
    return to_uint8(output)


def first_images(runs_dir: Path, class_name: str, count: int, seed: int = 0) -> np.ndarray:
    """The first `count` images an unfiltered export with `seed` holds for the class (uint8)."""
    path = RunPaths(Path(runs_dir) / class_name).generator
    generator, latent_dim = load_generator(path)
    latents = next(latent_batches(seed, CLASS_NAMES.index(class_name), count, latent_dim, count))
    return generate(generator, latents, path)
