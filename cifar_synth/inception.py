"""Inception FID: Keras' InceptionV3 ImageNet weights (downloaded if need be), its pool features, their Fréchet
distance."""

import contextlib
import socket
import sys
from pathlib import Path

import numpy as np

from cifar_synth.errors import UserError
from cifar_synth.images import LabeledImages, subsample_per_class
from cifar_synth.metrics import frechet_distance

# Keras' published InceptionV3 ImageNet weights without the classifier head, as keras.applications downloads them.
_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
_TIMEOUT_SECONDS = 10
_SIZE = 299


def inception_fid(real_test: LabeledImages, synthetic: LabeledImages, weights: str | Path | None, seed: int) -> dict:
    """Standard FID in InceptionV3 pool features, or {"skipped": why} when no weights can be had."""
    if weights is None:
        weights, why = _download_weights()
        if weights is None:
            return {"skipped": why}
    network = _network(Path(weights))
    # As many synthetic images per class as the real test set has, so both sides have the same size and balance.
    per_class = int(np.bincount(real_test.labels).max())
    sample = subsample_per_class(synthetic, per_class, seed)
    real_features = _features(network, real_test.images)
    synthetic_features = _features(network, sample.images)
    return {"value": frechet_distance(real_features, synthetic_features), "weights": str(weights),
            "real_images": len(real_test), "synthetic_images": len(sample),
            "note": "InceptionV3 2048-d pool features of images resized 32→299 (bilinear); with this few images "
                    "FID is biased upward against the usual 50,000-image figure"}


def _download_weights() -> tuple[str | None, str]:
    """(path, "") of Keras' weights, fetched into its cache if need be, or (None, why not)."""
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_TIMEOUT_SECONDS)
    try:
        # Keras announces the download on stdout, which must stay clean for `--json`.
        with contextlib.redirect_stdout(sys.stderr):
            return keras.utils.get_file(Path(_URL).name, _URL, file_hash=_MD5, cache_subdir="models"), ""
    except Exception as error:  # noqa: BLE001 — any failure to fetch only means: no Inception FID
        return None, (f"Inception FID skipped: no Inception weights (download failed: "
                      f"{str(error).splitlines()[0][:120]}); pass --inception-weights PATH to a Keras "
                      f"InceptionV3 .h5 file to get it")
    finally:
        socket.setdefaulttimeout(previous)


def _network(weights: Path):
    import keras

    try:
        return keras.applications.InceptionV3(include_top=False, weights=str(weights), input_shape=(_SIZE, _SIZE, 3),
                                              pooling="avg")
    except (ValueError, OSError):
        pass  # perhaps the full weights file, with the ImageNet classifier head
    try:
        full = keras.applications.InceptionV3(include_top=True, weights=str(weights))
    except (ValueError, OSError) as error:
        raise UserError(f"{weights} is not a Keras InceptionV3 weights file ({error})") from None
    return keras.Model(full.input, full.get_layer("avg_pool").output)


def _features(network, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(batch):
        resized = tf.image.resize(tf.cast(batch, tf.float32), (_SIZE, _SIZE))
        return network(resized / 127.5 - 1.0, training=False)  # InceptionV3's preprocess_input

    return np.concatenate([run(images[start:start + 100]).numpy() for start in range(0, len(images), 100)])
