"""cifar-synth: labeled synthetic CIFAR-10 datasets from per-class DCGANs."""

__version__ = "0.1.0"
