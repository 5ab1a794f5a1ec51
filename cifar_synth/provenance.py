"""Versions recorded in every config, manifest and report, so a result can be traced to what produced it."""

import platform
from importlib import metadata

import cifar_synth

_PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "pyarrow", "pillow", "matplotlib")


def package_versions() -> dict[str, str]:
    versions = {"cifar-synth": cifar_synth.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
