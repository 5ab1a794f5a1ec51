"""The in-memory form every loader returns, and the pixel conversions shared by train, export and evaluate."""

from dataclasses import dataclass

import numpy as np

from cifar_synth.classes import CIFAR10, Classes

IMAGE_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class LabeledImages:
    """Images as uint8 (N, 32, 32, 3) and labels as int64 (N,): label i is `classes.names[i]`."""

    images: np.ndarray
    labels: np.ndarray
    classes: Classes = CIFAR10

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must be uint8 (N, 32, 32, 3), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def of_class(self, label: int) -> np.ndarray:
        """The images whose label is `label`."""
        return self.images[self.labels == label]


def subsample_per_class(data: LabeledImages, per_class: int, seed: int) -> LabeledImages:
    """At most `per_class` images of each class, chosen by `seed`, kept in their original order."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(data.labels):
        indices = np.flatnonzero(data.labels == label)
        keep.append(np.sort(rng.choice(indices, min(per_class, len(indices)), replace=False)))
    keep = np.concatenate(keep)
    return LabeledImages(data.images[keep], data.labels[keep], data.classes)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] → float32 [-1, 1], the range of the generator's tanh output."""
    return images.astype(np.float32) / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] (generator output) → uint8 [0, 255], rounding to nearest."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
