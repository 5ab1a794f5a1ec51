"""cifar-synth: labeled synthetic CIFAR-10 datasets from per-class DCGANs."""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter is noise for a CLI user; real errors still surface as Python exceptions.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
