"""A Rich progress display for Keras `fit`, which has no Rich callback of its own (call `fit(verbose=0)`), shown
through the user's `Reporter`.
"""

import time

import keras
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cifar_synth.reporter import Reporter


class RichProgress(keras.callbacks.Callback):
    """Epoch and step bars with live metrics and seconds per epoch.

    `initial_epoch` lets a resumed run show its true position; `epochs` None shows an open-ended run.
    """

    def __init__(self, epochs: int | None, steps_per_epoch: int, title: str = "training", initial_epoch: int = 0,
                 reporter: Reporter | None = None):
        super().__init__()
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.title = title
        self.initial_epoch = initial_epoch
        self.progress = (reporter or Reporter()).progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
        )
        self._epoch_started = 0.0

    def on_train_begin(self, logs=None):
        self.progress.start()
        self.epoch_task = self.progress.add_task(
            self.title, total=self.epochs, completed=self.initial_epoch, metrics="")
        self.step_task = self.progress.add_task("  steps", total=self.steps_per_epoch, metrics="")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()
        self.progress.reset(self.step_task, total=self.steps_per_epoch, metrics="")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update(self.step_task, completed=batch + 1, metrics=_format(logs))

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_started
        summary = f"{_format(logs)}  {seconds:.1f} s/epoch"
        self.progress.update(self.epoch_task, completed=epoch + 1, metrics=summary)

    def on_train_end(self, logs=None):
        self.progress.stop()


def _format(logs) -> str:
    if not logs:
        return ""
    return "  ".join(f"{name} {float(value):.3f}" for name, value in logs.items())
