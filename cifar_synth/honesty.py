"""Whether an evaluation of an export can be honest, by what its manifest.json says the generators, their classifier
guidance and the export's filter saw: the test split the evaluation scores on must be unseen by all of them."""

from cifar_synth.filtering import EVALUATOR_CACHE

TEST_LEAK = "not honest: generators saw the test split"
UNKNOWN_FILTER = ("provenance unknown: filtered with a classifier that is not the evaluator's cached real-trained one "
                  "(it may have seen the test split)")
UNKNOWN_GUIDE = ("provenance unknown: generators guided by a classifier that is not the evaluator's cached "
                 "real-trained one (it may have seen the test split)")


def saw_test_split(run_config: dict | None) -> bool:
    """Whether a class's run config (config.json) says its generator trained on test images, itself or through the
    run it started from or resumed."""
    if not run_config:
        return False
    training, data = run_config.get("training") or {}, run_config.get("data") or {}
    flags = (training.get("saw_test_split"), training.get("saw_test"), run_config.get("saw_test_split"),
             training.get("include_test"))
    return any(flag is True for flag in flags) or "test" in (data.get("splits") or ())


def test_leaks(manifest: dict | None) -> list[str]:
    """The classes of the export whose generators saw the test split."""
    return [entry["name"] for entry in (manifest or {}).get("classes", ()) if saw_test_split(entry.get("run_config"))]


def unknown_provenance(manifest: dict | None) -> list[str]:
    """Labels for the classifiers that shaped the export without a known provenance: a `--classifier` filter, a
    `--guide` file."""
    if not manifest:
        return []
    labels = []
    classifier = (manifest.get("filter") or {}).get("classifier")
    if classifier is not None and filter_trained_on(classifier) is None:
        labels.append(f"{UNKNOWN_FILTER}: {classifier.get('path')}")
    guided = [entry["name"] for entry in manifest.get("classes", ()) if _guide_unknown(entry.get("run_config"))]
    if guided:
        labels.append(f"{UNKNOWN_GUIDE}: {', '.join(guided)}")
    return labels


def filter_trained_on(classifier: dict) -> str | None:
    """What the filter's classifier (a manifest's `filter.classifier`) was trained on, when cifar-synth knows it."""
    return classifier.get("trained_on") or (EVALUATOR_CACHE if classifier.get("from_evaluator_cache") else None)


def _guide_unknown(run_config: dict | None) -> bool:
    if not run_config:
        return False
    guidance = (run_config.get("gan") or {}).get("guidance") or 0
    return guidance > 0 and (run_config.get("training") or {}).get("guide") is not None
