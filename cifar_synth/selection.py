"""`cifar-synth select`: per class, the snapshot and latent spread whose samples come closest to the class's
validation slice, and the threshold at which the filter should keep them, so that no choice looks at the test split.

With `spread_by="accuracy"` the latent spread is chosen instead by what a CNN trained on the samples scores on the
validation slice (`cifar_synth.validation_search`): what the data is for, where the Fréchet distance measures
likeness to the real images.

The judge is the bundled CNN trained on the training split *without* the validation slice (cached in the runs
folder); each candidate (snapshot × latent standard deviation) is scored by the Fréchet distance between its
samples' and the class's validation images' features in that CNN, and by how often the CNN recognises its samples.
With every class selected at once, the judge then serves as the filter of `cifar_synth.thresholds`' search for each
class's confidence threshold. The choice goes to runs/<class>/selection.json, which `export` follows (the thresholds
with `--filter selected`).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_synth.classes import SHARED_START
from cifar_synth.data import official
from cifar_synth.errors import UserError
from cifar_synth.files import sha256_file, write_json_atomic
from cifar_synth.filtering import SELECTION_JUDGE
from cifar_synth.reporter import Reporter
from cifar_synth.runs import RunPaths, read_record, run_config, runs_classes, trained_classes
from cifar_synth.sampling import class_sampler
from cifar_synth.thresholds import CRITERION as THRESHOLD_CRITERION
from cifar_synth.thresholds import DEFAULT_MIN_CONFIDENCES, search_thresholds
from cifar_synth.validation_search import RULE, scorer_config, search_per_class

DEFAULT_LATENT_STDS = (1.0, 1.25, 1.5)
CRITERION = ("lowest Fréchet distance between the candidate's samples and the class's validation slice, in the "
             "penultimate features of the bundled CNN trained on the training split without the validation slice")
SPREAD_CRITERIA = ("frechet", "accuracy")
SPREAD_CRITERION = (RULE.format(setting="latent standard deviation") + "; the snapshot stays the one of the lowest "
                    "Fréchet distance")
JUDGE_DIR = Path(".cifar-synth") / "selection"


@dataclass(frozen=True)
class SelectOptions:
    """What `select` compares, and with how many samples."""

    runs_dir: Path = Path("runs")
    data_path: str | Path | None = None
    classes: tuple[str, ...] = ()  # empty: every trained class
    samples: int = 1000  # per candidate
    latent_stds: tuple[float, ...] = DEFAULT_LATENT_STDS
    budget: str = "quick"  # of the judge CNN (EvaluatorConfig.budget)
    seed: int = 0
    dataset: str | None = None  # with data_path: `cifar_synth.data.open_real_data`
    filter_search: bool = True  # search each class's filter threshold (for `export --filter selected`)
    min_confidences: tuple[float, ...] | None = None  # thresholds to search; None: DEFAULT_MIN_CONFIDENCES
    filter_count: int = 1000  # filtered samples per class that each scoring CNN trains on
    spread_by: str = "frechet"  # or "accuracy": the latent spread by a scoring CNN's validation accuracy

    def validate(self) -> None:
        if self.spread_by not in SPREAD_CRITERIA:
            raise UserError(f"--spread-by must be one of {', '.join(SPREAD_CRITERIA)}, got {self.spread_by!r}")
        if self.samples < 2:
            raise UserError(f"--samples must be at least 2, got {self.samples}")
        if not self.latent_stds or any(not 0 < std <= 10 for std in self.latent_stds):
            raise UserError(f"--latent-std values must be in (0, 10], got {list(self.latent_stds)}")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")
        if self.min_confidences and not self.filter_search:
            raise UserError("--min-confidence gives the thresholds to search; leave it out with --no-filter-search")
        if any(not 0 <= value <= 1 for value in self.min_confidences or ()):
            raise UserError(f"--min-confidence values must be between 0 and 1, got {list(self.min_confidences)}")
        if self.filter_count < 10:
            raise UserError(f"--filter-count must be at least 10, got {self.filter_count}")
        official(self.dataset)


def select_snapshots(options: SelectOptions, reporter: Reporter | None = None) -> dict[str, dict]:
    """Choose and record each class's snapshot and latent spread; returns class → its selection record."""
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.data import open_real_data, split_validation

    options.validate()
    reporter = reporter or Reporter()
    runs_dir = Path(options.runs_dir)
    runs_dataset = runs_classes(runs_dir)
    classes = runs_dataset.parse(list(options.classes)) if options.classes else trained_classes(runs_dir)
    if not classes:
        raise UserError(f"no trained generators in {runs_dir}; train some with `cifar-synth train`")
    data = open_real_data(options.data_path, dataset=options.dataset)
    if not data.classes.same_as(runs_dataset):
        raise UserError(f"the runs in {runs_dir} are of the {len(runs_dataset)} classes of {runs_dataset.dataset}, the "
                        f"real data ({data.source}) has the {len(data.classes)} of {data.classes.dataset}; select "
                        "with the data they trained on")
    fraction = _validation_fraction(runs_dir, classes, data.sha256)
    training, validation = split_validation(data.load("train"), fraction)  # the test split is never read
    judge_config = EvaluatorConfig.budget(options.budget)
    judge, judge_path = _judge(runs_dir, training, judge_config, data.sha256, fraction, options.seed, reporter)
    search = _thresholds_to_search(options, classes, runs_dataset, reporter)
    if options.spread_by == "accuracy" and set(classes) != set(runs_dataset.names):
        raise UserError("--spread-by accuracy scores all classes at once; select all classes (no --class)")
    chosen = {}
    for class_name in classes:
        chosen[class_name] = _select_class(runs_dir, class_name, validation, judge, judge_config, options)
        best = chosen[class_name]["chosen"]
        reporter.info(f"{class_name}: snapshot at step {best['steps']:,}, latent std {best['latent_std']:g} "
                      f"(FD {best['frechet_distance']:.1f} to {chosen[class_name]['validation_images']} "
                      f"validation images, recognised {best['recognised']:.0%})")
    if options.spread_by == "accuracy":
        _choose_spreads(runs_dir, chosen, validation, options, judge_path, reporter)
    if search:
        _choose_thresholds(runs_dir, chosen, judge, judge_path, validation, search, options, reporter)
    return chosen


def _thresholds_to_search(options: SelectOptions, classes: list[str], dataset, reporter: Reporter) -> tuple:
    """The thresholds to search, none when the classes selected are not all of the dataset's (a scoring CNN needs
    every class); an error when they were asked for explicitly then."""
    if not options.filter_search:
        return ()
    if set(classes) != set(dataset.names):
        if options.min_confidences is not None:
            raise UserError("--min-confidence searches every class's threshold at once; select all classes (no "
                            "--class), or leave out --min-confidence")
        reporter.info("filter thresholds not searched: the search scores all classes at once (select without --class)")
        return ()
    return tuple(sorted(set(options.min_confidences or DEFAULT_MIN_CONFIDENCES)))


def _choose_thresholds(runs_dir: Path, chosen: dict[str, dict], judge, judge_path: Path, validation, thresholds: tuple,
                       options: SelectOptions, reporter: Reporter) -> None:
    """Search the filter's thresholds; record the search beside the judge and each class's choice in its selection."""
    classes = validation.classes
    samplers = {name: class_sampler(runs_dir / name) for name in classes.names}
    search = search_thresholds(samplers, classes, judge, validation, options.filter_count, options.seed, thresholds,
                               reporter)
    if search is None:
        return
    search_path = judge_path.with_name("thresholds.json")
    write_json_atomic(search_path, search)
    judge_entry = {"path": judge_path.relative_to(runs_dir).as_posix(), "sha256": sha256_file(judge_path),
                   "trained_on": SELECTION_JUDGE}
    for name, selection in chosen.items():
        selection["filter"] = {"min_confidence": search["chosen"][name], "classifier": judge_entry,
                               "criterion": THRESHOLD_CRITERION, "search": search_path.relative_to(runs_dir).as_posix()}
        write_json_atomic(RunPaths(runs_dir / name).selection, selection)
    reporter.info(f"filter thresholds ({search['chosen_run']}): " + ", ".join(
        f"{name} {value:g}" for name, value in search["chosen"].items()) + "; export them with --filter selected")


def _choose_spreads(runs_dir: Path, chosen: dict[str, dict], validation, options: SelectOptions, judge_path: Path,
                    reporter: Reporter) -> None:
    """Choose each class's latent spread at its chosen snapshot by the validation search; record the search beside
    the judge and each class's choice in its selection."""
    classes = validation.classes
    images: dict[tuple[str, float], np.ndarray] = {}
    for name, selection in chosen.items():
        path = RunPaths(runs_dir / name).snapshots / selection["chosen"]["snapshot"]
        # Its own stream: not the candidates' of the snapshot choice nor the threshold search's.
        for std, samples in _samples_at_spreads(path, [options.seed, classes.label(name), 2], options.samples,
                                                options.latent_stds).items():
            images[name, std] = samples
    scorer = scorer_config(options.samples)
    search = search_per_class(sorted(options.latent_stds), lambda name, std: images[name, std], list(chosen), classes,
                              scorer, validation, options.seed, reporter, key="latent_stds", label="latent std")
    search = {"criterion": SPREAD_CRITERION, "latent_stds": sorted(options.latent_stds),
              "count_per_class": options.samples,
              "scorer": {**scorer.to_dict(), "trained_on": f"{options.samples} samples per class"},
              "validation_images": len(validation), **search, "test_split_read": False}
    search_path = judge_path.with_name("spreads.json")
    write_json_atomic(search_path, search)
    for name, selection in chosen.items():
        by_frechet = selection["chosen"]
        selection["chosen"] = next(candidate for candidate in selection["candidates"]
                                   if candidate["snapshot"] == by_frechet["snapshot"]
                                   and candidate["latent_std"] == search["chosen"][name])
        selection["latent_std_choice"] = {"criterion": SPREAD_CRITERION, "by_frechet": by_frechet["latent_std"],
                                          "search": search_path.relative_to(runs_dir).as_posix()}
        write_json_atomic(RunPaths(runs_dir / name).selection, selection)
    reporter.info(f"latent spreads ({search['chosen_run']}): " + ", ".join(
        f"{name} {std:g}" for name, std in search["chosen"].items()))


def _validation_fraction(runs_dir: Path, classes: list[str], sha256: str) -> float:
    """The validation fraction every class run held out, trained on this data; an error where they differ."""
    fractions = set()
    for class_name in classes:
        config = run_config(runs_dir / class_name) or {}
        if config.get("data", {}).get("sha256") != sha256:
            raise UserError(f"{class_name} was trained on other real data than --data; select with the same data")
        validation = config.get("data", {}).get("validation")
        if not validation or not validation["fraction"]:
            raise UserError(f"{class_name} was trained without a validation slice (cifar-synth before 0.2, or "
                            "--validation-fraction 0): there is nothing honest to select on; retrain it")
        fractions.add(validation["fraction"])
    if len(fractions) > 1:
        raise UserError(f"the runs held out different validation fractions ({sorted(fractions)}); select them apart")
    return fractions.pop()


def _judge(runs_dir: Path, training, config, sha256: str, fraction: float, seed: int, reporter: Reporter):
    """The judge CNN trained on `training` (the training split less the validation slice), cached by its key, and
    its file."""
    from cifar_synth.classifier import load_classifier, train_classifier
    from cifar_synth.files import atomic_path

    key = {"data_sha256": sha256, "validation_fraction": fraction, "seed": seed, "config": config.to_dict()}
    folder = runs_dir / JUDGE_DIR
    name = f"judge-{_digest(key)}"
    model_path, key_path = folder / f"{name}.keras", folder / f"{name}.json"
    if model_path.is_file() and key_path.is_file():
        return load_classifier(model_path, len(training.classes)), model_path
    folder.mkdir(parents=True, exist_ok=True)
    reporter.info(f"training the selection judge (the {config.budget_name} CNN) on {len(training):,} training "
                  "images, the validation slice held out")
    model = train_classifier(training, config, seed, title="selection judge", reporter=reporter)
    with atomic_path(model_path) as temp:
        model.save(temp)
    write_json_atomic(key_path, key)
    return model, model_path


def _digest(key: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _samples_at_spreads(path: Path, rng_key: list[int], count: int, stds) -> dict[float, np.ndarray]:
    """The generator at `path`'s images of the same `count` latents drawn from `rng_key`, at each spread in `stds`."""
    from cifar_synth.sampling import generate, load_generator

    generator, latent_dim = load_generator(path)
    latents = np.random.default_rng(rng_key).standard_normal((count, latent_dim), dtype=np.float32)
    return {std: generate(generator, latents * np.float32(std), path) for std in stds}


def _select_class(runs_dir: Path, class_name: str, validation, judge, judge_config, options: SelectOptions) -> dict:
    from cifar_synth.classifier import make_predictor
    from cifar_synth.metrics import frechet_distance

    paths = RunPaths(runs_dir / class_name)
    if class_name == SHARED_START:
        raise UserError("the shared start has no class to select for")
    label = validation.classes.label(class_name)
    record = read_record(paths.root)
    steps = paths.snapshot_steps()
    if not steps or record is None:
        raise UserError(f"{class_name} has no snapshots (trained with --snapshot-every 0, or before snapshots); "
                        "nothing to select from")
    held_out = validation.images[validation.labels == label]
    if len(held_out) < 2:
        raise UserError(f"{class_name} has {len(held_out)} validation image(s); a distance needs at least 2 (more "
                        "training images, or a larger --validation-fraction when training)")
    predict = make_predictor(judge, judge_config.test_time_flip)
    _, validation_features = predict(held_out)
    candidates = []
    for step in steps:
        samples = _samples_at_spreads(paths.snapshot(step), [options.seed, label], options.samples, options.latent_stds)
        for std, images in samples.items():
            probabilities, features = predict(images)
            candidates.append({"steps": step, "latent_std": std, "snapshot": paths.snapshot(step).name,
                               "frechet_distance": frechet_distance(validation_features, features),
                               "recognised": float(np.mean(probabilities.argmax(1) == label))})
    best = min(candidates, key=lambda candidate: candidate["frechet_distance"])
    selection = {"criterion": CRITERION, "chosen": best, "candidates": candidates, "samples": options.samples,
                 "validation_images": len(validation_features), "judge": {"budget": judge_config.budget_name,
                                                                          "trained_on": SELECTION_JUDGE},
                 "record_steps": record.steps, "test_split_read": False}
    write_json_atomic(paths.selection, selection)
    return selection
