"""A per-class setting chosen by what a classifier learns from the samples, scored on the validation slice.

`select` searches two settings this way (GaFi's search): each class's filter threshold (`cifar_synth.thresholds`) and
each class's latent spread (`cifar_synth.selection`). For each candidate value, a scoring CNN is trained on every
class's samples at that value and scored on the validation slice; each class then takes the value under which it had
its best F1, and that per-class mix is kept when a CNN trained on it scores at least the best single value's
validation accuracy, else the best single value goes to every class. The test split is never read.
"""

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from cifar_synth.images import LabeledImages
from cifar_synth.reporter import Reporter

# One scoring CNN per candidate: the quick budget keeps a search to minutes; its figures rank, they do not report.
SCORER_BUDGET = "quick"
REFERENCE_IMAGES_PER_CLASS = 5000  # a scoring CNN trains as many steps as its budget does on this many per class
RULE = ("per class, the {setting} under which a CNN trained on the samples of every class had its best F1 on the "
        "class's validation images; the per-class mix only if a CNN trained on it scored at least the best single "
        "{setting}'s validation accuracy, else that {setting} for every class")


def scorer_config(count: int):
    """The scoring CNN's configuration when it trains on `count` samples per class."""
    from cifar_synth.classifier import EvaluatorConfig

    quick = EvaluatorConfig.budget(SCORER_BUDGET)
    return replace(quick, epochs=max(1, round(quick.epochs * REFERENCE_IMAGES_PER_CLASS / count)))


def search_per_class(values: list[float], samples: Callable[[str, float], np.ndarray], class_names: list[str], classes,
                     config, validation: LabeledImages, seed: int, reporter: Reporter, key: str, label: str,
                     feasible: Callable[[str, float], float] = lambda name, value: value) -> dict:
    """Score every single value, then the per-class mix. `samples(class_name, value)` gives the class's images at a
    value; `feasible(class_name, value)` the value the class takes when `value` is asked (itself unless the class
    cannot be sampled at it). Returns the runs (`single`, `mixed`; each run's values per class under `key`), the
    choice per class (`chosen`) and the chosen run's name; runs are named `label` and the value."""
    def score(choice: dict[str, float], run_name: str) -> dict:
        return {"name": run_name, key: choice,
                **_score({name: samples(name, value) for name, value in choice.items()}, classes, config, validation,
                         seed, run_name, reporter)}

    runs = [score({name: feasible(name, value) for name in class_names}, f"{label} {value:g}") for value in values]
    best_single = max(runs, key=lambda run: run["accuracy"])
    per_class = {name: max(runs, key=lambda run: run["f1"][name])[key][name] for name in class_names}
    chosen, mixed = best_single, None
    if len(set(per_class.values())) > 1:
        mixed = score(per_class, "per-class mix")
        if mixed["accuracy"] >= best_single["accuracy"]:
            chosen = mixed
    return {"single": runs, "mixed": mixed, "chosen": chosen[key], "chosen_run": chosen["name"]}


def _score(samples: dict[str, np.ndarray], classes, config, validation: LabeledImages, seed: int, run_name: str,
           reporter: Reporter) -> dict:
    """Validation accuracy and per-class F1 of a CNN trained on every class's samples."""
    from cifar_synth.classifier import make_predictor, train_classifier
    from cifar_synth.metrics import accuracy_figures

    labels = [np.full(len(images), classes.label(name)) for name, images in samples.items()]
    model = train_classifier(LabeledImages(np.concatenate(list(samples.values())), np.concatenate(labels), classes),
                             config, seed, title=f"scoring {run_name}", reporter=reporter)
    probabilities, _ = make_predictor(model, config.test_time_flip)(validation.images)
    figures = accuracy_figures(probabilities.argmax(1), validation.labels, classes.names)
    confusion = np.array(figures["confusion"])
    true_positive = np.diag(confusion)
    f1 = 2 * true_positive / np.maximum(confusion.sum(0) + confusion.sum(1), 1)
    reporter.info(f"{run_name}: validation accuracy {figures['accuracy']:.1%}")
    return {"accuracy": figures["accuracy"], "f1": dict(zip(classes.names, f1.tolist())),
            "per_class_accuracy": figures["per_class_accuracy"]}
