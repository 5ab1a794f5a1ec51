"""Per-class confidence thresholds of the classifier filter, chosen on the validation slice (GaFi's threshold search).

For each candidate threshold, every class's selected sampler gives `count` images that the selection judge accepts at
it; a CNN trained on them is scored on the validation slice. Each class then takes the threshold under which it scored
the best F1; the per-class mix is kept when a CNN trained on it scores at least as well overall as the best single
threshold, else that single threshold goes to every class. The test split is never read.
"""

from dataclasses import dataclass, replace

import numpy as np

from cifar_synth.filtering import FILTER_RULE, MAX_CANDIDATES_PER_IMAGE, accepted
from cifar_synth.images import LabeledImages
from cifar_synth.reporter import Reporter

DEFAULT_MIN_CONFIDENCES = (0.0, 0.5, 0.7, 0.9)
CRITERION = ("per class, the threshold under which a CNN trained on the filtered samples of every class had its best "
             "F1 on the class's validation images; the per-class mix only if a CNN trained on it scored at least the "
             "best single threshold's validation accuracy, else that threshold for every class")
# One scoring CNN per threshold: the quick budget keeps the search to minutes; its figures rank, they do not report.
SCORER_BUDGET = "quick"
REFERENCE_IMAGES_PER_CLASS = 5000  # a scoring CNN trains as many steps as its budget does on this many per class
_BATCH = 2048


@dataclass(frozen=True)
class _Pool:
    """A class's first `count` accepted samples at each feasible threshold, and how often each threshold accepted."""

    images: dict[float, np.ndarray]  # the feasible thresholds only
    acceptance: dict[float, float]

    def at(self, threshold: float) -> float:
        """The threshold the class is filtered at when `threshold` is asked: the highest feasible one up to it."""
        return max((value for value in self.images if value <= threshold), default=min(self.images))


def search_thresholds(samplers: dict, classes, judge, validation: LabeledImages, count: int, seed: int,
                      thresholds: tuple[float, ...], reporter: Reporter) -> dict | None:
    """The search's record: each class's chosen threshold (`chosen`) and every scoring run; None (with a warning) when
    a class cannot be filled at any threshold.

    `samplers` maps every class name of the dataset `classes` to its `cifar_synth.sampling.ClassSampler`; `judge` is
    the classifier that filters (the export's filter with `--filter selected`), `validation` the validation slice the
    scoring CNNs are scored on.
    """
    from cifar_synth.classifier import EvaluatorConfig, make_predictor

    predict = make_predictor(judge, test_time_flip=True)  # as the export's filter predicts
    pools = {}
    for name, sampler in samplers.items():
        pools[name] = _pool(sampler, classes.label(name), predict, sorted(thresholds), count, seed)
        rates = ", ".join(f"{value:g}: {rate:.0%}" for value, rate in pools[name].acceptance.items())
        reporter.info(f"{name}: the judge accepts {rates}")
    quick = EvaluatorConfig.budget(SCORER_BUDGET)
    scorer = replace(quick, epochs=max(1, round(quick.epochs * REFERENCE_IMAGES_PER_CLASS / count)))
    unfilled = [name for name, pool in pools.items() if not pool.images]
    if unfilled:
        reporter.warn(f"filter thresholds not searched: the judge accepts fewer than {count} of "
                      f"{count * MAX_CANDIDATES_PER_IMAGE:,} samples of {', '.join(unfilled)} at every threshold")
        return None
    runs = [_score({name: pool.at(value) for name, pool in pools.items()}, pools, classes, scorer, validation, seed,
                   f"threshold {value:g}", reporter) for value in sorted(thresholds)]
    best_single = max(runs, key=lambda run: run["accuracy"])
    per_class = {name: max(runs, key=lambda run: run["f1"][name])["thresholds"][name] for name in pools}
    chosen, mixed = best_single, None
    if len(set(per_class.values())) > 1:
        mixed = _score(per_class, pools, classes, scorer, validation, seed, "per-class mix", reporter)
        if mixed["accuracy"] >= best_single["accuracy"]:
            chosen = mixed
    return {"criterion": CRITERION, "rule": FILTER_RULE, "thresholds": sorted(thresholds), "count_per_class": count,
            "scorer": {**scorer.to_dict(), "trained_on": f"{count} filtered samples per class"},
            "validation_images": len(validation), "acceptance": {name: pool.acceptance for name, pool in pools.items()},
            "single": runs, "mixed": mixed, "chosen": chosen["thresholds"], "chosen_run": chosen["name"],
            "test_split_read": False}


def _pool(sampler, label: int, predict, thresholds: list[float], count: int, seed: int) -> _Pool:
    """Samples the class until every threshold has `count` accepted samples or the export's candidate cap is hit; a
    threshold short of `count` within the cap is infeasible, as it would be for the export."""
    from cifar_synth.sampling import generate, load_generator

    generator, latent_dim = load_generator(sampler.path)
    rng = np.random.default_rng([seed, label, 1])  # not the candidates' stream of the snapshot choice
    kept: dict[float, list[np.ndarray]] = {value: [] for value in thresholds}
    found, passed = dict.fromkeys(thresholds, 0), dict.fromkeys(thresholds, 0)
    candidates, limit = 0, count * MAX_CANDIDATES_PER_IMAGE
    while candidates < limit and min(found.values()) < count:
        latents = rng.standard_normal((min(_BATCH, limit - candidates), latent_dim), dtype=np.float32)
        images = generate(generator, latents * np.float32(sampler.latent_std), sampler.path)
        probabilities, _ = predict(images)
        candidates += len(images)
        for value in thresholds:
            mask = accepted(probabilities, label, value)
            passed[value] += int(mask.sum())
            if found[value] < count:
                taken = images[mask][:count - found[value]]
                kept[value].append(taken)
                found[value] += len(taken)
    return _Pool({value: np.concatenate(kept[value]) for value in thresholds if found[value] == count},
                 {value: passed[value] / candidates for value in thresholds})


def _score(thresholds: dict[str, float], pools: dict[str, _Pool], classes, config, validation: LabeledImages,
           seed: int, run_name: str, reporter: Reporter) -> dict:
    """Validation accuracy and per-class F1 of a CNN trained on every class's samples at its threshold."""
    from cifar_synth.classifier import make_predictor, train_classifier
    from cifar_synth.metrics import accuracy_figures

    images = [pools[name].images[value] for name, value in thresholds.items()]
    labels = [np.full(len(batch), classes.label(name)) for name, batch in zip(thresholds, images)]
    model = train_classifier(LabeledImages(np.concatenate(images), np.concatenate(labels), classes), config, seed,
                             title=f"scoring {run_name}", reporter=reporter)
    probabilities, _ = make_predictor(model, config.test_time_flip)(validation.images)
    figures = accuracy_figures(probabilities.argmax(1), validation.labels, classes.names)
    confusion = np.array(figures["confusion"])
    true_positive = np.diag(confusion)
    f1 = 2 * true_positive / np.maximum(confusion.sum(0) + confusion.sum(1), 1)
    reporter.info(f"{run_name}: validation accuracy {figures['accuracy']:.1%}")
    return {"name": run_name, "thresholds": thresholds,
            "accuracy": figures["accuracy"], "f1": dict(zip(classes.names, f1.tolist())),
            "per_class_accuracy": figures["per_class_accuracy"]}

