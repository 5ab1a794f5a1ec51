"""Measures shared by train (the mode-collapse watch) and evaluate (diversity), on plain numpy arrays."""

import numpy as np


def mean_pairwise_distance(items: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of `items` (each flattened to a vector): near zero when they collapse.

    Needs at least two items; cost grows with the square of their number.
    """
    flat = np.asarray(items, dtype=np.float64).reshape(len(items), -1)
    if len(flat) < 2:
        raise ValueError(f"need at least two items for a pairwise distance, got {len(flat)}")
    squared = np.sum(flat**2, axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * flat @ flat.T, 0.0))
    n = len(flat)
    return float(distances.sum() / (n * (n - 1)))
