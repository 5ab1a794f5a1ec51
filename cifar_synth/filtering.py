"""The classifier filter: which generated images a real-trained CNN recognises as their class, with what confidence.

One rule (`accepted`) shared by `export --filter classifier` and the threshold search of `cifar-synth select`, so that
the thresholds chosen on the validation slice mean in the export exactly what they meant when they were chosen.
`ImageFilter` is what the export asks of any filter (this one, `cifar_synth.drs.DiscriminatorFilter`, and the copy
audit after either, `cifar_synth.audit.CopyExclusion`).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from cifar_synth.files import sha256_file

DEFAULT_MIN_CONFIDENCE = 0.5
MAX_CANDIDATES_PER_IMAGE = 50  # a class whose generator the classifier rarely recognises fails instead of running on
FILTER_RULE = (
    "a candidate is kept when the classifier's most probable class is the class it was generated for and that "
    "probability is at least min_confidence; probabilities are the softmax of the logits averaged over the image and "
    "its mirror image (cifar_synth.classifier.make_predictor with test_time_flip)"
)
# Where a filter's classifier came from, when cifar-synth knows it: what it was trained on.
EVALUATOR_CACHE = "the real training split; it is the evaluator's cached real-trained CNN"
SELECTION_JUDGE = "the real training split less the validation slice; it is the judge of `cifar-synth select`"


class ImageFilter(Protocol):
    """An export filter: it judges each class's candidates in order, batch by batch, until enough are kept."""

    def start_class(self, batches: Iterator[np.ndarray], label: int, class_name: str) -> Iterator[np.ndarray]:
        """Called once per class before `accepts`: the class's candidate batches (uint8), after the filter has read
        what it needs of them first; the export judges the batches it returns, in order."""

    def accepts(self, images: np.ndarray, label: int, class_name: str) -> np.ndarray:
        """Boolean mask of the class's next candidates `images` to keep."""

    def class_record(self, class_name: str, candidates: int) -> dict:
        """What the class's manifest entry records of the filter's settings, once `candidates` were examined."""

    def shortfall(self, class_name: str) -> tuple[str, str, str]:
        """Who judged, at what setting (" at …" or ""), and what to do: the error for a class left short."""

    def describe(self) -> dict:
        """The manifest's `filter` entry."""


def accepted(probabilities: np.ndarray, label: int, min_confidence: float) -> np.ndarray:
    """Boolean mask of the candidates of class `label` whose class probabilities (N, classes) pass the filter."""
    return (probabilities.argmax(1) == label) & (probabilities[:, label] >= min_confidence)


class ClassifierFilter:
    """Keeps the images a classifier built like the evaluator's recognises as their class with enough confidence.

    `min_confidence` is one threshold for every class, or one per class name (as `select` chose them). `trained_on`
    says what the classifier was trained on when that is known (`EVALUATOR_CACHE`, `SELECTION_JUDGE`), else None.
    The classifier takes float pixels 0–255 of shape (N, 32, 32, 3) (it normalises inside), outputs a logit per class
    of the dataset and has a layer named `features`, as `cifar_synth.classifier.build_classifier` makes it.
    """

    def __init__(self, path: Path, min_confidence: float | dict[str, float], num_classes: int,
                 trained_on: str | None = None, baseline: dict | None = None):
        from cifar_synth.classifier import load_classifier, make_predictor

        self.path = path
        self.min_confidence = min_confidence
        self.trained_on = trained_on
        self.baseline = baseline  # an evaluator cache entry's budget, training images, accuracy (`CachedClassifier`)
        self.model = load_classifier(path, num_classes)
        self.sha256 = sha256_file(path)
        self.predict = make_predictor(self.model, test_time_flip=True)

    def threshold(self, class_name: str) -> float:
        """The class's minimum confidence."""
        return self.min_confidence[class_name] if isinstance(self.min_confidence, dict) else self.min_confidence

    def start_class(self, batches: Iterator[np.ndarray], label: int, class_name: str) -> Iterator[np.ndarray]:
        return batches  # each candidate is judged alone

    def accepts(self, images: np.ndarray, label: int, class_name: str) -> np.ndarray:
        """Boolean mask of the uint8 `images` of class `label` to keep."""
        probabilities, _ = self.predict(images)
        return accepted(probabilities, label, self.threshold(class_name))

    def class_record(self, class_name: str, candidates: int) -> dict:
        return {"min_confidence": self.threshold(class_name)}

    def shortfall(self, class_name: str) -> tuple[str, str, str]:
        return ("the classifier", f" at min confidence {self.threshold(class_name):g}",
                "lower --min-confidence or --count, or train this class's generator further")

    def __str__(self) -> str:
        source = {EVALUATOR_CACHE: "the evaluator's cached real-trained classifier",
                  SELECTION_JUDGE: "the selection judge"}.get(self.trained_on, "classifier")
        figures = f" ({baseline_text(self.baseline)})" if self.baseline else ""
        return f"{source} {self.path}{figures}, {self.thresholds_text()}"

    def thresholds_text(self) -> str:
        if not isinstance(self.min_confidence, dict):
            return f"min confidence {self.min_confidence:g}"
        return "min confidence per class as `select` chose it (" + ", ".join(
            f"{name} {value:g}" for name, value in self.min_confidence.items()) + ")"

    def describe(self) -> dict:
        per_class = isinstance(self.min_confidence, dict)
        return {"method": "classifier", "rule": FILTER_RULE,
                "min_confidence": None if per_class else self.min_confidence,
                **({"min_confidence_per_class": self.min_confidence,
                    "min_confidence_chosen_by": "cifar-synth select, on the validation slice"} if per_class else {}),
                "test_time_flip": True, "max_candidates_per_image": MAX_CANDIDATES_PER_IMAGE,
                "classifier": {"path": str(self.path.resolve()), "sha256": self.sha256,
                               "from_evaluator_cache": self.trained_on == EVALUATOR_CACHE,
                               "trained_on": self.trained_on,
                               **({"baseline": self.baseline} if self.baseline else {})}}


def baseline_text(baseline: dict) -> str:
    """"default budget, 5,000 training images per class (50,000 in all), 88.0% accuracy on the real test split": a
    cached baseline's figures (`CachedClassifier.describe`, a manifest's `filter.classifier.baseline`)."""
    budget = baseline.get("budget") or "custom"
    if budget == "custom":
        widths = "-".join(str(width) for width in baseline.get("widths") or []) or "?"
        epochs = baseline.get("epochs")
        budget = f"custom budget (widths {widths}, {epochs} epoch{'' if epochs == 1 else 's'})"
    else:
        budget += " budget"
    per_class, images = baseline.get("train_images_per_class"), baseline.get("train_images")
    trained = (f"{per_class:,} training images per class" if per_class else "training images not recorded") + (
        f" ({images:,} in all)" if images else "")
    accuracy = baseline.get("real_test_accuracy")
    tested = "accuracy not recorded" if accuracy is None else f"{accuracy:.1%} accuracy on the real test split"
    return f"{budget}, {trained}, {tested}"
