"""The evaluator's baseline cache: real-trained judges kept between evaluations, and how to find them.

Layout, under the cache directory (default `~/.cache/cifar-synth/evaluator`, `$XDG_CACHE_HOME` honoured):

- the bundled CNN: `<entry>/classifier.keras` and `<entry>/metrics.json`;
- any other judge: `<judge name>/<entry>/classifier.keras` and `.../metrics.json`, one level deeper, so that the
  export's classifier filter, which looks for `*/classifier.keras`, finds CNN baselines only.

`<entry>` is the first 24 hex digits of the sha256 of the key (sorted JSON): cache version, the real data's sha256,
the seed, the training images per class, the judge's configuration without its budget name and, for a dataset other
than CIFAR-10, its classes. metrics.json is
written last, atomically: its presence marks a complete entry.
"""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cifar_synth.classes import CIFAR10, Classes
from cifar_synth.errors import UserError
from cifar_synth.judge_names import CNN
from cifar_synth.files import atomic_path, write_json_atomic
from cifar_synth.saved_models import load_model

CLASSIFIER_FILE, METRICS_FILE = "classifier.keras", "metrics.json"
_CACHE_VERSION = 1  # bump when a change to training invalidates cached baselines
_RETRAIN = "; rerun with --no-cache"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cifar-synth" / "evaluator"


# Fields that joined the configs later, at the values every earlier baseline had: left out of the key, so that the
# entries cached before them stay valid.
_FIELDS_OF_OLDER_KEYS = {"architecture": "classic", "precision": "float32", "whitening_epsilon": None}


def baseline_key(judge: str, real_sha256: str, seed: int, per_class: int, config: dict, classes: Classes) -> dict:
    """What a cached baseline depends on. The CNN's key has no judge field, as before there were other judges, and
    CIFAR-10's no classes field, as before there were other datasets: their entries stay valid."""
    key = {"cache_version": _CACHE_VERSION, "real_sha256": real_sha256, "seed": seed, "per_class": per_class,
           "config": {name: value for name, value in config.items()
                      if name != "budget_name" and not (name in _FIELDS_OF_OLDER_KEYS
                                                         and _FIELDS_OF_OLDER_KEYS[name] == value)}}
    if not classes.same_as(CIFAR10):
        key["classes"] = classes.to_record()
    return key if judge == CNN else {**key, "judge": judge}


def entry_dir(cache_dir: str | Path, judge: str, key: dict) -> Path:
    root = Path(cache_dir) if judge == CNN else Path(cache_dir) / judge
    return root / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def is_complete(entry: Path) -> bool:
    return (entry / METRICS_FILE).is_file() and (entry / CLASSIFIER_FILE).is_file()


def load_entry(entry: Path):
    """(model, metrics) of a complete entry; an unreadable one is a user error naming it."""
    from cifar_synth import judges  # noqa: F401 — registers the custom objects the judges' models are saved with

    try:
        metrics = json.loads((entry / METRICS_FILE).read_text())["metrics"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"cached baseline {entry} is unreadable ({error}){_RETRAIN}") from None
    return load_model(entry / CLASSIFIER_FILE, "cached baseline", _RETRAIN), metrics


def store_entry(entry: Path, key: dict, model, metrics: dict, warn=None) -> bool:
    """Cache a freshly trained baseline in `entry`; whether it is cached.

    A cache only saves time: with `warn` (the reporter's), a write that fails (a full disk, no permission) is a
    warning and the caller goes on with its model; without it, a `UserError`. Either way what the failed write left
    of the entry is removed, so no entry pairs a new classifier with old metrics.
    """
    try:
        with atomic_path(entry / CLASSIFIER_FILE) as temp:
            model.save(temp)
        write_json_atomic(entry / METRICS_FILE, {"key": key, "metrics": metrics})  # last: marks the entry complete
    except (OSError, UserError) as error:
        shutil.rmtree(entry, ignore_errors=True)
        reason = str(error) if isinstance(error, UserError) else f"cannot write {entry}: {error.strerror or error}"
        if warn is None:
            raise UserError(f"the baseline cache: {reason}") from None
        warn(f"the baseline is not cached: {reason}. The evaluation goes on; the next one trains the baseline "
             "again (or pass --cache-dir elsewhere)")
        return False
    return True


def cached_cnn_classifiers(cache_dir: str | Path | None = None) -> list[Path]:
    """The classifier files of the complete CNN baselines in `cache_dir` (default: the default cache), sorted."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return sorted(path for path in cache_dir.glob(f"*/{CLASSIFIER_FILE}") if is_complete(path.parent))


# --- the cached classifier of the export filter and of classifier guidance ------------------------------------------

# The evaluator budget whose cached CNN the filter and the guidance take (`EvaluatorConfig.budget(FILTER_BUDGET)`).
FILTER_BUDGET = "default"
# A cached classifier below this accuracy on the real test split is refused unless named: one wrong on most real
# images cannot tell a class's generated images from another's, and a filter by it keeps a biased subset, or none.
MIN_FILTER_ACCURACY = 0.5
# Configuration fields that say how a classifier's numbers were computed (a machine's precision), not what it trained.
_NOT_WHAT_IT_TRAINS = ("budget_name", "precision")


@dataclass(frozen=True)
class CachedClassifier:
    """A complete CNN baseline of the cache: its classifier file, the key it was stored under and its metrics."""

    path: Path
    key: dict
    metrics: dict

    @classmethod
    def read(cls, path: Path) -> "CachedClassifier":
        """The entry whose classifier is `path`; empty key and metrics when its metrics.json is unreadable."""
        try:
            record = json.loads((path.parent / METRICS_FILE).read_text())
            key, metrics = record.get("key"), record.get("metrics")
        except (OSError, ValueError, AttributeError):
            key, metrics = {}, {}
        return cls(path, key if isinstance(key, dict) else {}, metrics if isinstance(metrics, dict) else {})

    @property
    def per_class(self) -> int:
        """Training images per class (0 when the key does not say)."""
        value = self.key.get("per_class")
        return value if isinstance(value, int) else 0

    @property
    def accuracy(self) -> float | None:
        """Accuracy on the real test split (None when not recorded)."""
        value = self.metrics.get("accuracy")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def budget(self) -> str | None:
        """The evaluator budget (`EvaluatorConfig.budget(name)`) whose every field the classifier was trained with;
        None for any other configuration. Fields the key does not record (added to the configuration after the entry
        was cached) and how the numbers were computed (`_NOT_WHAT_IT_TRAINS`) are not compared."""
        from cifar_synth.classifier import EvaluatorConfig

        config = self.key.get("config")
        if not isinstance(config, dict):
            return None
        for name in EvaluatorConfig.BUDGETS:
            fields = EvaluatorConfig.budget(name).to_dict().items()
            if all(config[field] == value for field, value in fields
                   if field in config and field not in _NOT_WHAT_IT_TRAINS) and config.get("widths") is not None:
                return name
        return None

    def describe(self) -> dict:
        """What the manifest records of it."""
        config = self.key.get("config") or {}
        return {"budget": self.budget or "custom", "widths": config.get("widths"), "epochs": config.get("epochs"),
                "seed": self.key.get("seed"), "train_images_per_class": self.per_class or None,
                "train_images": self.metrics.get("train_images"), "real_test_accuracy": self.accuracy}

    @property
    def text(self) -> str:
        from cifar_synth.filtering import baseline_text

        return baseline_text(self.describe())


def choose_cached_classifier(real_sha256: str, cache_dir: str | Path | None = None, per_class: int | None = None,
                             option: str = "--classifier") -> CachedClassifier:
    """The real-trained CNN cached in `cache_dir` (default: the default cache) for the export filter and for the
    classifier guidance of training: the evaluator's `FILTER_BUDGET` CNN trained on all the training images
    (`per_class` of each class, where the caller knows it, else the most of any such entry) of the real data whose
    sha256 is `real_sha256` (the data the generators train on: its training split only, never the test split).

    Not the one trained last nor any other: a quick trial evaluation's classifier (one epoch, a small subset) would
    filter by chance. None of that kind, or one below `MIN_FILTER_ACCURACY`, is a `UserError` that says what is
    cached and what to do (`option` names the flag that takes a classifier's path instead).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = [CachedClassifier.read(path) for path in cached_cnn_classifiers(cache_dir)]
    same = [entry for entry in cached if entry.key.get("real_sha256") == real_sha256]
    evaluate = (f"run `cifar-synth evaluate --budget {FILTER_BUDGET}` on an export of "
                f"{f'at least {per_class:,}' if per_class else 'as many'} images per class as the real training "
                "split has (it trains and caches one)")
    if not same:
        others = f" ({len(cached)} trained on other data)" if cached else ""
        raise UserError(f"no real-trained classifier cached in {cache_dir} was trained on this real data (sha256 "
                        f"{real_sha256[:12]}…){others}: {evaluate}, or pass {option} PATH")
    proper = [entry for entry in same if entry.budget == FILTER_BUDGET and entry.per_class >= (per_class or 0)]
    if not proper:
        images = f"all {per_class:,} training images per class" if per_class else "the training images"
        there = "; ".join(f"{entry.path.parent.name}: {entry.text}" for entry in same)
        raise UserError(f"no classifier of the evaluator's {FILTER_BUDGET} budget trained on {images} of this real "
                        f"data is cached in {cache_dir}; cached for it: {there}. To filter with a proper one, "
                        f"{evaluate}; or pass {option} with the path of one of these")
    chosen = max(proper, key=lambda entry: (entry.per_class, entry.accuracy or 0.0, str(entry.path)))
    if chosen.accuracy is None or chosen.accuracy < MIN_FILTER_ACCURACY:
        figure = "no recorded accuracy" if chosen.accuracy is None else f"{chosen.accuracy:.1%} accuracy"
        raise UserError(f"the cached classifier {chosen.path} ({chosen.text}) has {figure} on the real test split, "
                        f"below the {MIN_FILTER_ACCURACY:.0%} a filter needs to tell one class's images from "
                        f"another's: delete {chosen.path.parent} and {evaluate}, or pass {option} {chosen.path} to "
                        "use it anyway")
    return chosen


def the_cached_cnn_classifier(real_sha256: str, cache_dir: str | Path | None = None) -> Path:
    """The classifier file of `choose_cached_classifier` for the classifier guidance of training (`--guide`)."""
    return choose_cached_classifier(real_sha256, cache_dir, option="--guide").path


def trained_on(classifier: str | Path) -> str | None:
    """The sha256 of the real data a cached baseline's classifier file was trained on (its training split); None
    when the file is not in a complete cache entry, so where it came from is unknown."""
    entry = Path(classifier).parent
    if Path(classifier).name != CLASSIFIER_FILE or not is_complete(entry):
        return None
    try:
        return json.loads((entry / METRICS_FILE).read_text())["key"]["real_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
