"""Loading a saved Keras model (a generator, a classifier, a cached baseline): the model, or one line naming it."""

from pathlib import Path

from cifar_synth.errors import UserError


def load_model(path: str | Path, what: str, hint: str = ""):
    """The Keras model at `path`, loaded without its training state; a `UserError` naming `what` and `path` (and
    `hint`, what to do about it) when it cannot be."""
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a missing, corrupt or foreign file
        raise UserError(f"cannot load {what} {path}: {error}{hint}") from None
