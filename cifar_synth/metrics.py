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


# --- fidelity and diversity apart: precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020)

PRECISION_RECALL_K, DENSITY_COVERAGE_K = 3, 5
_PRDC_BLOCK = 1024  # reference rows per block of the distance matrix: memory stays O(block × samples)


def prdc(real: np.ndarray, fake: np.ndarray, precision_recall_k: int = PRECISION_RECALL_K,
         density_coverage_k: int = DENSITY_COVERAGE_K) -> dict | None:
    """Precision, recall, density and coverage of the `fake` features against the `real` ones, as the reference
    implementation (clovaai/generative-evaluation-prdc) computes them: Euclidean k-NN balls, strict `<`.

    `real` is the reference: precision and density ask whether fake samples lie in the real manifold, recall whether
    real samples lie in the fake one (swapping the arguments swaps precision and recall). Repeated vectors are kept
    once on each side, since a ball whose k-th neighbour is a duplicate has radius 0 and holds nothing. Pass equal
    sample sizes: all four depend on them. None when either side has no more distinct vectors than the largest k.
    """
    real, fake = (np.unique(np.asarray(x, np.float32), axis=0) for x in (real, fake))
    largest_k = max(precision_recall_k, density_coverage_k)
    if len(real) <= largest_k or len(fake) <= largest_k:
        return None
    real_radii = {k: radius for k, radius in zip((precision_recall_k, density_coverage_k),
                                                 _kth_neighbour_distances(real, (precision_recall_k,
                                                                                 density_coverage_k)))}
    (fake_radius,) = _kth_neighbour_distances(fake, (precision_recall_k,))
    in_real_ball = np.zeros(len(fake), bool)  # precision: the fake sample lies in some real ball (k = P/R's)
    density_hits = np.zeros(len(fake))  # density: how many real balls (k = D/C's) hold the fake sample
    recalled, covered = [], []
    for start in range(0, len(real), _PRDC_BLOCK):
        block = slice(start, start + _PRDC_BLOCK)
        distances = _distances(real[block], fake)  # (block, fake)
        in_real_ball |= (distances < real_radii[precision_recall_k][block, None]).any(0)
        density_hits += (distances < real_radii[density_coverage_k][block, None]).sum(0)
        recalled.append((distances < fake_radius[None, :]).any(1))
        covered.append(distances.min(1) < real_radii[density_coverage_k][block])
    return {"precision": float(in_real_ball.mean()), "recall": float(np.concatenate(recalled).mean()),
            "density": float(density_hits.mean() / density_coverage_k),
            "coverage": float(np.concatenate(covered).mean()),
            "real": len(real), "fake": len(fake), "precision_recall_k": precision_recall_k,
            "density_coverage_k": density_coverage_k}


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _kth_neighbour_distances(points: np.ndarray, ks: tuple[int, ...]) -> list[np.ndarray]:
    """Each point's distance to its k-th nearest other point, for each k in `ks` (the point itself is its 0th)."""
    found = [[] for _ in ks]
    for start in range(0, len(points), _PRDC_BLOCK):
        distances = _distances(points[start:start + _PRDC_BLOCK], points)
        nearest = np.sort(np.partition(distances, max(ks), axis=1)[:, :max(ks) + 1], axis=1)
        for radii, k in zip(found, ks):
            radii.append(nearest[:, k])
    return [np.concatenate(radii) for radii in found]
