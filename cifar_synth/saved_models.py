"""Saved Keras models (a generator, a classifier, a cached baseline, a checkpoint's weights): loading one, or one
line naming it; and writing weights without leaving HDF5 to fail against a full disk."""

import io
from pathlib import Path

from cifar_synth.errors import UserError, one_line
from cifar_synth.files import write_bytes_atomic


def load_model(path: str | Path, what: str, hint: str = ""):
    """The Keras model at `path`, loaded without its training state; a `UserError` naming `what` and `path` (and
    `hint`, what to do about it) when it cannot be."""
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a missing, corrupt or foreign file
        raise UserError(f"cannot load {what} {path}: {one_line(error)}{hint or _remedy(Path(path))}") from None


def _remedy(path: Path) -> str:
    """What to do about an unloadable model file that cifar-synth wrote, by where it lies ("" for others)."""
    from cifar_synth import baseline_cache, runs

    if path.name == runs.GENERATOR_FILE or path.parent.name == "snapshots":
        return f"; {runs.remedy(path)}"
    if path.name.startswith("judge-") and path.parent.name == "selection":
        return "; delete it: `cifar-synth select` trains the judge again"
    if path.name == baseline_cache.CLASSIFIER_FILE and (path.parent / baseline_cache.METRICS_FILE).is_file():
        return f"; delete the cache entry {path.parent} (an evaluation on this data caches it again)"
    return ""


def load_weights(model, path: str | Path) -> None:
    """`model.load_weights(path)` of a run's checkpoint; a truncated or corrupt file is one line naming it and what
    to do (a missing one raises `FileNotFoundError`, for callers that expect a file to go)."""
    from cifar_synth.runs import START_OVER

    try:
        model.load_weights(path)
    except FileNotFoundError:
        raise
    except Exception as error:  # h5py and Keras raise many types for a truncated file or other networks
        raise UserError(f"cannot load the checkpoint {path}: {one_line(error)}; {START_OVER}") from None


def save_weights(model, target: str | Path) -> None:
    """`model.save_weights(target)` (a `.weights.h5` file, loadable by `model.load_weights`), written atomically.

    The HDF5 file is built in memory and only its bytes go to disk, by Python: on a full disk HDF5 would fail in the
    middle of its file, then again in every later flush of the half-written file, up to the interpreter's exit, where
    finalising that file crashed the process (h5py "Can't decrement id ref count", then a segmentation fault). Here
    the write fails once, as an `OSError` that `write_bytes_atomic` turns into one line, and nothing is left open.
    """
    write_bytes_atomic(target, weights_bytes(model))


def weights_bytes(model) -> bytes:
    """The bytes of the `.weights.h5` file `model.save_weights` would write."""
    try:
        from keras.src.saving.saving_lib import H5IOStore, _save_state
    except ImportError:  # a Keras without these internals: through a temporary file
        return _weights_bytes_through_file(model)
    buffer = io.BytesIO()
    store = H5IOStore(buffer, mode="w")
    try:
        _save_state(model, store, None, "", set())  # as keras.src.saving.saving_lib.save_weights_only
    finally:
        store.close()
    return buffer.getvalue()


def _weights_bytes_through_file(model) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.weights.h5"
        model.save_weights(path)
        return path.read_bytes()

