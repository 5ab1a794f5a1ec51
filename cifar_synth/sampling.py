"""Sampling a class's trained generator: its latent stream, loading it, and generating images in batches.

The one definition of which images a generator gives for a seed, shared by `export` (every image), `show` and the
dataset card's sample sheet (the first images an export holds). TensorFlow is imported only to load a generator.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_synth.errors import UserError
from cifar_synth.images import IMAGE_SHAPE, to_uint8
from cifar_synth.runs import RunPaths, read_record, read_selection, runs_classes

LATENT_RECIPE = (
    "latents of class `label` = numpy.random.default_rng([seed, label]).standard_normal((count, latent_dim), "
    "dtype=numpy.float32) × the class's generator.latent_std (1 unless `cifar-synth select` chose another); row i "
    "gives image i (drawn in batches, which yields the same rows for any batch size)"
)


@dataclass(frozen=True)
class ClassSampler:
    """What a class is sampled from: a generator file and the spread of its latents, as `select` chose them or
    the run's final generator with standard normal latents."""

    path: Path
    latent_std: float = 1.0
    selection: dict | None = None  # the run's selection.json when followed

    def describe(self, runs_dir: Path) -> dict:
        """The manifest's `generator` entry."""
        from cifar_synth.files import sha256_file

        entry = {"path": self.path.relative_to(runs_dir).as_posix(), "sha256": sha256_file(self.path),
                 "latent_std": self.latent_std}
        if self.selection is not None:
            chosen = self.selection["chosen"]
            entry["selected"] = {"criterion": self.selection["criterion"], "steps": chosen["steps"],
                                 "frechet_distance": chosen["frechet_distance"], "recognised": chosen["recognised"],
                                 "validation_images": self.selection["validation_images"],
                                 "candidates": len(self.selection["candidates"])}
        return entry


def class_sampler(run_dir: Path, use_selection: bool = True) -> ClassSampler:
    """The class's sampler: its selection when there is one that is still current (the run has not trained since
    it was made), else the final generator."""
    paths = RunPaths(run_dir)
    if use_selection and paths.selection.is_file():
        selection = read_selection(run_dir)
        record = read_record(run_dir)
        snapshot = paths.snapshots / selection["chosen"]["snapshot"]
        if record is not None and record.steps == selection["record_steps"] and snapshot.is_file():
            return ClassSampler(snapshot, selection["chosen"]["latent_std"], selection)
    return ClassSampler(paths.generator)


def stale_selection(run_dir: Path, sampler: ClassSampler) -> bool:
    """Whether the run has a selection that `sampler` does not follow because the run trained on after it."""
    return sampler.selection is None and RunPaths(run_dir).selection.is_file()


def latent_batches(seed: int, label: int, count: int, latent_dim: int, batch_size: int,
                   std: float = 1.0) -> Iterator[np.ndarray]:
    """The latents in batches; numpy's Generator draws sequentially, so the rows do not depend on batch_size."""
    rng = np.random.default_rng([seed, label])
    for start in range(0, count, batch_size):
        yield rng.standard_normal((min(batch_size, count - start), latent_dim), dtype=np.float32) * np.float32(std)


def load_generator(path: Path):
    """The Keras generator at `path` and its latent size."""
    from cifar_synth.saved_models import load_model

    generator = load_model(path, "generator")
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
    sampler = class_sampler(Path(runs_dir) / class_name)
    generator, latent_dim = load_generator(sampler.path)
    label = runs_classes(runs_dir).label(class_name)
    latents = next(latent_batches(seed, label, count, latent_dim, count, sampler.latent_std))
    return generate(generator, latents, sampler.path)
