"""Per-class confidence thresholds of the classifier filter, chosen on the validation slice (GaFi's threshold search).

For each candidate threshold, every class's selected sampler gives `count` images that the selection judge accepts at
it; the search of `cifar_synth.validation_search` then scores them. The test split is never read.
"""

from dataclasses import dataclass

import numpy as np

from cifar_synth.filtering import FILTER_RULE, MAX_CANDIDATES_PER_IMAGE, accepted
from cifar_synth.images import LabeledImages
from cifar_synth.reporter import Reporter
from cifar_synth.validation_search import RULE, scorer_config, search_per_class

DEFAULT_MIN_CONFIDENCES = (0.0, 0.5, 0.7, 0.9)
CRITERION = RULE.format(setting="threshold") + " (the samples: those the judge accepts)"
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
    from cifar_synth.classifier import make_predictor

    predict = make_predictor(judge, test_time_flip=True)  # as the export's filter predicts
    pools = {}
    for name, sampler in samplers.items():
        pools[name] = _pool(sampler, classes.label(name), predict, sorted(thresholds), count, seed)
        rates = ", ".join(f"{value:g}: {rate:.0%}" for value, rate in pools[name].acceptance.items())
        reporter.info(f"{name}: the judge accepts {rates}")
    scorer = scorer_config(count)
    unfilled = [name for name, pool in pools.items() if not pool.images]
    if unfilled:
        reporter.warn(f"filter thresholds not searched: the judge accepts fewer than {count} of "
                      f"{count * MAX_CANDIDATES_PER_IMAGE:,} samples of {', '.join(unfilled)} at every threshold")
        return None
    search = search_per_class(sorted(thresholds), lambda name, value: pools[name].images[value], list(pools), classes,
                              scorer, validation, seed, reporter, key="thresholds", label="threshold",
                              feasible=lambda name, value: pools[name].at(value))
    return {"criterion": CRITERION, "rule": FILTER_RULE, "thresholds": sorted(thresholds), "count_per_class": count,
            "scorer": {**scorer.to_dict(), "trained_on": f"{count} filtered samples per class"},
            "validation_images": len(validation), "acceptance": {name: pool.acceptance for name, pool in pools.items()},
            **search, "test_split_read": False}


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

