"""Optional features and the extras that install them: one clear line when one is missing."""

import importlib

from cifar_synth.errors import UserError


def require_extra(module: str, extra: str, feature: str):
    """Import `module`, or fail with one line naming `feature` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{feature} needs {module}, which is not installed: "
                        f"pip install 'cifar-synth[{extra}]'") from None
