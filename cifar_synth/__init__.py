"""cifar-synth: labeled synthetic CIFAR-10 datasets from per-class DCGANs."""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ log is noise for a CLI user: start-up chatter, and with bfloat16 a harmless "remapper failed"
# graph-optimizer error on every compile. Real failures still surface as Python exceptions.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
