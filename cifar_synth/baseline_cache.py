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


def baseline_key(judge: str, real_sha256: str, seed: int, per_class: int, config: dict, classes: Classes) -> dict:
    """What a cached baseline depends on. The CNN's key has no judge field, as before there were other judges, and
    CIFAR-10's no classes field, as before there were other datasets: their entries stay valid."""
    key = {"cache_version": _CACHE_VERSION, "real_sha256": real_sha256, "seed": seed, "per_class": per_class,
           "config": {name: value for name, value in config.items() if name != "budget_name"}}
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


def store_entry(entry: Path, key: dict, model, metrics: dict) -> None:
    try:
        with atomic_path(entry / CLASSIFIER_FILE) as temp:
            model.save(temp)
        write_json_atomic(entry / METRICS_FILE, {"key": key, "metrics": metrics})  # last: marks the entry complete
    except OSError as error:
        raise UserError(f"cannot write the baseline cache in {entry}: {error}") from None


def cached_cnn_classifiers(cache_dir: str | Path | None = None) -> list[Path]:
    """The classifier files of the complete CNN baselines in `cache_dir` (default: the default cache), sorted."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return sorted(path for path in cache_dir.glob(f"*/{CLASSIFIER_FILE}") if is_complete(path.parent))


def _key(entry: Path) -> dict:
    """The key a complete entry was stored under; empty when unreadable."""
    try:
        key = json.loads((entry / METRICS_FILE).read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return key if isinstance(key, dict) else {}


def _training_images(key: dict) -> int:
    """Images a cached CNN baseline was trained on (per class × epochs) by its key; 0 when the key does not say."""
    try:
        return int(key["per_class"]) * int(key["config"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return 0


def the_cached_cnn_classifier(real_sha256: str, cache_dir: str | Path | None = None) -> Path:
    """The real-trained CNN cached in `cache_dir` (default: the default cache) for the export filter and the
    classifier guidance of training: of those trained on the real data whose sha256 is `real_sha256` (the data the
    caller's generators train on: its training split only, never the test split), the one trained longest, so that
    a quick evaluation's smaller baseline does not stand in the way. None, or a tie for the longest, is a user error
    that says what to do."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    keys = {path: _key(path.parent) for path in cached_cnn_classifiers(cache_dir)}
    found = [path for path, key in keys.items() if key.get("real_sha256") == real_sha256]
    if not found:
        others = f" ({len(keys)} trained on other data)" if keys else ""
        raise UserError(f"no real-trained classifier cached in {cache_dir} was trained on this real data (sha256 "
                        f"{real_sha256[:12]}…){others}: run `cifar-synth evaluate` with it first (it caches one) or "
                        "pass the classifier's path")
    trained = {path: _training_images(keys[path]) for path in found}
    longest = max(trained.values())
    found = [path for path in found if trained[path] == longest]
    if len(found) == 1:
        return found[0]
    raise UserError(f"{len(found)} cached real-trained classifiers in {cache_dir} were trained alike "
                    f"({', '.join(str(path) for path in found)}); pass the path of one")


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
