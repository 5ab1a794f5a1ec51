"""Command-line entry point: `cifar-synth` and `python -m cifar_synth`.

Each command lives in its own module as a thin Typer wrapper around a plain, importable function.
TensorFlow is imported only inside commands that need it, so `--help` stays fast.
"""

from cifar_synth.cli import audit, data, evaluate, export, publish, select, show, train  # noqa: F401  (registers them)
from cifar_synth.cli._app import app


def main() -> None:
    app()
