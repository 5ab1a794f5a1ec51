"""The classifiers an evaluation trains (`Fit`: a judge on one training set), training and testing one, and the same
as an executor's task (`FitJob`), whose data and model travel through .npz and .keras files in a work folder."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_synth.classes import Classes
from cifar_synth.judge_names import CNN
from cifar_synth.executors.job import Job
from cifar_synth.files import atomic_path
from cifar_synth.images import LabeledImages
from cifar_synth.metrics import accuracy_figures, top_k_accuracy
from cifar_synth.report import ClassifierResult, percent
from cifar_synth.reporter import Reporter
from cifar_synth.saved_models import load_model

TRAIN_SETS = {"real": ("real",), "synthetic": ("synthetic",), "mix": ("real", "synthetic")}  # → their parts


@dataclass(frozen=True)
class Fit:
    """One classifier an evaluation trains: a judge on one training set, tested on the real test images."""

    judge: str  # a key of judges.JUDGES
    config: object  # the judge's config
    train_set: str  # a key of TRAIN_SETS

    @property
    def name(self) -> str:
        return f"{self.judge}-{self.train_set}"  # e.g. cnn-synthetic: the task's name with an executor

    @property
    def title(self) -> str:
        title = {"real": "real-trained baseline", "synthetic": "synthetic-trained",
                 "mix": "real+synthetic-trained"}[self.train_set]
        return title if self.judge == CNN else f"{self.judge} {title}"


def train_and_test(fit: Fit, data: LabeledImages, test: LabeledImages, seed: int, reporter: Reporter):
    """Train `fit`'s judge on `data`, test it on `test`: (model, ClassifierResult)."""
    from cifar_synth.classifier import make_predictor
    from cifar_synth.judges import JUDGES

    started = time.perf_counter()
    model = JUDGES[fit.judge].train(data, fit.config, seed, title=fit.title, reporter=reporter)
    seconds = time.perf_counter() - started
    probabilities, _ = make_predictor(model, fit.config.test_time_flip)(test.images)
    return model, ClassifierResult(**accuracy_figures(probabilities.argmax(1), test.labels, test.classes.names),
                                   top5_accuracy=top_k_accuracy(probabilities, test.labels),
                                   train_images=len(data), train_seconds=seconds)


def joined(parts: list[LabeledImages]) -> LabeledImages:
    if len(parts) == 1:
        return parts[0]
    return LabeledImages(np.concatenate([part.images for part in parts]),
                         np.concatenate([part.labels for part in parts]), parts[0].classes)


def fit_jobs(fits: list[Fit], parts: Callable[[str], list[LabeledImages]], test: LabeledImages, work: Path,
             seed: int, state_dir: Path, session: str, cpus: int | None) -> list["FitJob"]:
    """`fits` as tasks, their training sets' `parts(train_set)` and `test` written once each into `work`."""
    files = {"test": _write_images(work / "test.npz", test)}
    for fit in fits:
        for part, images in zip(TRAIN_SETS[fit.train_set], parts(fit.train_set)):
            files[part] = files.get(part) or _write_images(work / f"{part}.npz", images)
    return [FitJob(fit, tuple(files[part] for part in TRAIN_SETS[fit.train_set]), files["test"],
                   work / f"{fit.name}.keras", seed, state_dir, session, cpus, os.getcwd()) for fit in fits]


@dataclass(frozen=True)
class FitJob(Job):
    """One of an evaluation's classifiers as an executor's task: trained and tested in a worker, which saves the model
    to `model_file` and reports its `ClassifierResult` in its status."""

    fit: Fit
    train_files: tuple[Path, ...]  # the training set's parts (fit_jobs writes them), joined in this order
    test_file: Path
    model_file: Path
    seed: int
    state_dir: Path
    session: str
    cpus: int | None
    cwd: str

    NOUNS = ("classifier", "classifiers")
    COLUMNS = ("accuracy", "seconds")
    SHARED = "--out (the report directory)"
    AFTER_FAILURE = "run the same command again once their errors are fixed (a baseline trained meanwhile is cached)"

    @property
    def name(self) -> str:
        return self.fit.name

    def work(self) -> dict:
        from cifar_synth.executors.job import log_reporter

        data = joined([_read_images(path) for path in self.train_files])
        model, result = train_and_test(self.fit, data, _read_images(self.test_file), self.seed, log_reporter())
        with atomic_path(self.model_file) as temp:
            model.save(temp)
        return {"result": result.to_dict()}

    def cells(self, status: dict) -> list[str]:
        result = status.get("result")
        return [percent(result["accuracy"]), f"{result['train_seconds']:.0f}"] if result else ["", ""]

    def collect(self):
        """(model, result) of the finished task; the model only of a baseline (the others' are not needed)."""
        from cifar_synth.executors.job import read_status

        result = ClassifierResult.from_dict(read_status(self)["result"])
        model = load_model(self.model_file, f"{self.name}'s model") if self.fit.train_set == "real" else None
        return model, result


def _write_images(path: Path, data: LabeledImages) -> Path:
    with atomic_path(path) as temp:
        np.savez(temp, images=data.images, labels=data.labels, class_names=np.array(data.classes.names),
                 dataset=np.array(data.classes.dataset))
    return path


def _read_images(path: Path) -> LabeledImages:
    with np.load(path) as arrays:
        classes = Classes(str(arrays["dataset"]), tuple(str(name) for name in arrays["class_names"]))
        return LabeledImages(arrays["images"], arrays["labels"], classes)
