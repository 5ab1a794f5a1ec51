"""TensorFlow's C++ start-up log kept off the terminal, unless CIFAR_SYNTH_VERBOSE=1 (or `cifar-synth --verbose`).

TensorFlow logs through absl, which prints every message to stderr until absl::InitializeLog() runs, whatever
TF_CPP_MIN_LOG_LEVEL says: the oneDNN and "Could not find cuda drivers" notices, and absl's warning about exactly
that, arrive while `import tensorflow` runs. So that import runs with file descriptor 2 (where C++ writes) pointed at
a temporary file, shown only if the import fails. The devices are listed inside the same block, so the CUDA probe's
"failed call to cuInit" of a machine without a GPU (an ERROR, shown by a TF_CPP_MIN_LOG_LEVEL of 2 or less, which many
users set) is caught too; listing the physical devices leaves thread and memory settings open. Later C++ messages obey
TF_CPP_MIN_LOG_LEVEL, 3 unless the user set it: the graph optimizer's "remapper failed" (docs/train.md says why it is
harmless). Real failures still surface as Python exceptions.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator

VERBOSE_VARIABLE = "CIFAR_SYNTH_VERBOSE"


def verbose() -> bool:
    """Whether the user asked to see TensorFlow's log; read when TensorFlow is imported, so a flag can set it."""
    return os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


def quiet_tensorflow_import() -> None:
    """Quiet this process's first `import tensorflow`, whoever makes it (Keras included)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import to quiet, and the search below must not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is not None and not verbose():
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__spec__.loader = module.__loader__ = self.loader  # TensorFlow sees its own loader
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _stderr_held():
            self.loader.exec_module(module)
            _probe_devices(module)


def _probe_devices(tensorflow) -> None:
    """List the physical devices once, so that the CUDA probe's log lands while file descriptor 2 is held.

    A failure here is not the import's: whatever uses the devices later raises it where it matters.
    """
    try:
        tensorflow.config.list_physical_devices()
    except Exception:  # noqa: BLE001 - see the docstring
        pass


@contextlib.contextmanager
def _stderr_held() -> Iterator[None]:
    """File descriptor 2 points at a temporary file during the block; what it caught is shown if the block raises."""
    if sys.stderr:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    caught = b""
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            held.seek(0)
            caught = held.read()
            raise
        finally:
            if sys.stderr:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            os.write(2, caught)
