"""The measures of train (the mode-collapse watch) and evaluate (accuracy, Fréchet distance, KID, diversity), on plain
numpy arrays: no TensorFlow."""

import numpy as np

_KID_SUBSETS, _KID_SUBSET_SIZE = 50, 1000
DIVERSITY_SAMPLE = 500  # items for a sampled mean pairwise distance (O(n²))


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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(Σa^½ Σb Σa^½)^½), by symmetric eigendecompositions (stable for singular Σ)."""
    if len(a) < 2 or len(b) < 2:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    distance = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(distance, 0.0))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> dict | None:
    """Unbiased MMD² with the cubic polynomial kernel (x·y/d + 1)³, mean and std over random subsets."""
    size = min(_KID_SUBSET_SIZE, len(a), len(b))
    if size < 2:
        return None
    a, b = a.astype(np.float64), b.astype(np.float64)
    dims = a.shape[1]
    estimates = []
    for _ in range(_KID_SUBSETS):
        x, y = a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / dims + 1) ** 3, (y @ y.T / dims + 1) ** 3, (x @ y.T / dims + 1) ** 3)
        off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        estimates.append(off_diagonal - 2 * k_xy.mean())
    return {"mean": float(np.mean(estimates)), "std": float(np.std(estimates)), "subsets": _KID_SUBSETS,
            "subset_size": size}


def sampled_pairwise_distance(features: np.ndarray, rng: np.random.Generator) -> float | None:
    """The mean pairwise distance of up to `DIVERSITY_SAMPLE` of `features` chosen by `rng`; None under two."""
    if len(features) < 2:
        return None
    if len(features) > DIVERSITY_SAMPLE:
        features = features[rng.choice(len(features), DIVERSITY_SAMPLE, replace=False)]
    return mean_pairwise_distance(features)


TOP_K = 5
# Top-k is reported for datasets of more classes than this: it tells near misses from confusions where top-1 alone
# hides them (CIFAR-100's fine labels), and a CIFAR-10 report stays as it was.
TOP_K_ABOVE_CLASSES = 10


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of images whose true class is among the `TOP_K` most probable; None with `TOP_K_ABOVE_CLASSES` classes
    or fewer."""
    if probabilities.shape[1] <= TOP_K_ABOVE_CLASSES or not len(labels):
        return None
    top = np.argpartition(-probabilities, TOP_K - 1, axis=1)[:, :TOP_K]
    return float(np.mean((top == labels[:, None]).any(1)))


def accuracy_figures(predicted: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """Overall and per-class (`class_names`, in label order) accuracy, and the confusion matrix (rows: true class,
    columns: predicted)."""
    confusion = np.zeros((len(class_names), len(class_names)), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(1)
    return {
        "accuracy": float(np.trace(confusion) / max(totals.sum(), 1)),
        "per_class_accuracy": {name: float(confusion[i, i] / totals[i]) if totals[i] else None
                               for i, name in enumerate(class_names)},
        "confusion": confusion.tolist(),
    }
