"""Recompute the constants the evaluator's judges ship with from the real training split, and compare.

    python benchmarks/whitening_constants.py --data DATA [--print]

The pixel mean and standard deviation per channel (`PIXEL_MEAN`, `PIXEL_STD`) and the second moments of the
normalised 2×2 patches (`PATCH_SECOND_MOMENTS`, the whitening stem's source) of the training split of `--data`.
Exits 1 when a recomputed value differs from the shipped one by more than the tolerance (JPEG copies of CIFAR-10
differ from the official pixels by a few levels, which moves the statistics a little). `--print` prints the patch
moments as Python source to paste.
"""

import argparse
import os
import sys

import numpy as np

PIXEL_TOLERANCE = 1.0  # levels of 0–255
MOMENT_TOLERANCE = 0.02
BATCH = 5000


def patch_second_moments(images: np.ndarray, mean, std) -> np.ndarray:
    """(12, 12): E[p pᵀ] over every 2×2 patch p (row, column, channel order) of the normalised images."""
    total, count = np.zeros((12, 12)), 0
    for start in range(0, len(images), BATCH):
        x = (images[start:start + BATCH].astype(np.float64) - mean) / std
        patches = np.stack([x[:, i:i + 31, j:j + 31, :] for i in (0, 1) for j in (0, 1)], axis=3).reshape(-1, 12)
        total += patches.T @ patches
        count += len(patches)
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="real CIFAR-10 (as `--data` of the CLI)")
    parser.add_argument("--print", action="store_true", help="print the patch moments as Python source")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cifar_synth.classifier import PATCH_SECOND_MOMENTS, PIXEL_MEAN, PIXEL_STD
    from cifar_synth.data import open_real_data

    images = open_real_data(args.data).load("train").images
    pixels = images.reshape(-1, 3).astype(np.float64)
    mean, std = pixels.mean(0), pixels.std(0)
    moments = patch_second_moments(images, np.array(PIXEL_MEAN), np.array(PIXEL_STD))
    if args.print:
        print("PATCH_SECOND_MOMENTS = (\n" + "".join(
            "    (" + ", ".join(f"{value:.5f}" for value in row) + "),\n" for row in moments) + ")")
    gaps = {"pixel mean": np.abs(mean - PIXEL_MEAN).max(), "pixel std": np.abs(std - PIXEL_STD).max(),
            "patch second moments": np.abs(moments - np.array(PATCH_SECOND_MOMENTS)).max()}
    limits = {"pixel mean": PIXEL_TOLERANCE, "pixel std": PIXEL_TOLERANCE, "patch second moments": MOMENT_TOLERANCE}
    print(f"{len(images):,} training images; recomputed mean {np.round(mean, 2)}, std {np.round(std, 2)}")
    for name, gap in gaps.items():
        print(f"{name}: largest difference from the shipped constant {gap:.4f} (tolerance {limits[name]})")
    sys.exit(0 if all(gaps[name] <= limits[name] for name in gaps) else 1)


if __name__ == "__main__":
    main()
