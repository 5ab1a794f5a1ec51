"""`cifar-synth evaluate`: how much a synthetic dataset is worth, measured with the bundled CNN and a second judge.

Headline: classification accuracy score (CAS), the accuracy on real test images of the CNN trained on synthetic images,
divided by the accuracy of the same CNN trained on as many real images per class. The second judge (a ResNet with
another recipe, `cifar_synth.judges`) gives the same figures, so that data made with the help of a CNN like the
bundled one cannot flatter itself unseen. Also: the real-trained CNN's accuracy on the synthetic images
(recognizability), Fréchet distance and KID in its penultimate-layer features, the diversity of each class, optional
real+synthetic training, and Inception FID when Inception weights are at hand.
"""

import datetime
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cifar_synth import baseline_cache
from cifar_synth.judge_names import CNN, JUDGE_NAMES
from cifar_synth.errors import UserError
from cifar_synth.config import MAX_SEED
from cifar_synth.data import official
from cifar_synth.honesty import TEST_LEAK, test_leaks, unknown_provenance
from cifar_synth.fits import TRAIN_SETS, Fit, fit_jobs, joined, train_and_test
from cifar_synth.images import LabeledImages, subsample_per_class
from cifar_synth.inception import inception_fid
from cifar_synth.metrics import (DIVERSITY_SAMPLE, accuracy_figures, frechet_distance, kernel_inception_distance,
                                 sampled_pairwise_distance)
from cifar_synth.provenance import package_versions
from cifar_synth.report import (NOT_INCEPTION_FID, ClassifierResult, Diversity, FeatureMetrics, Headline,
                                JudgeReport, Recognizability, Report)
from cifar_synth.reporter import Reporter

if TYPE_CHECKING:
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.data import RealData
    from cifar_synth.executors import ExecutorOptions
    from cifar_synth.judges import Judge, JudgeConfig



def default_out_dir(synthetic_path: str | Path) -> Path:
    path = Path(synthetic_path).resolve()
    return Path("reports") / (path.stem if path.is_file() else path.name)


@dataclass(frozen=True)
class EvaluateOptions:
    """How `evaluate_synthetic` measures a synthetic dataset; `validated()` checks it (the one place) and fills in the
    defaults.

    `data_path` and `dataset`: the real data (`cifar_synth.data.open_real_data`: default $CIFAR_SYNTH_DATA, else
    datasets/cifar10/), whose classes must be the synthetic data's. `out_dir`: default
    `reports/<synthetic name>`. `config`: an `EvaluatorConfig` (default: the `default` budget). `judges` names the
    classifiers trained: "cnn" (required) and optionally "resnet", the second judge, configured by `judge_config`
    (default: the budget named like `config`'s, else `default`). The real-trained baselines are cached in
    `cache_dir` (default `~/.cache/cifar-synth/evaluator`) unless `use_cache` is false. `inception=False` skips
    Inception FID; otherwise it uses `inception_weights` or tries to download Keras' weights. `executor` (default:
    in this process) says where the classifiers train: as tasks at once, beyond one local process, each leaving its
    log in `out_dir/.cifar-synth/logs/` (docs/scale.md); the figures are those of training in this process.
    An export whose manifest says a generator saw the test split is refused unless `allow_test_leak`; the report then
    says it is not honest.
    """

    data_path: str | Path | None = None
    out_dir: str | Path | None = None
    config: "EvaluatorConfig | None" = None
    seed: int = 0
    mix: bool = False
    use_cache: bool = True
    cache_dir: str | Path | None = None
    inception_weights: str | Path | None = None
    inception: bool = True
    judges: Sequence[str] = JUDGE_NAMES
    judge_config: "JudgeConfig | None" = None
    executor: "ExecutorOptions | None" = None
    allow_test_leak: bool = False
    dataset: str | None = None

    def validate(self) -> None:
        """Raise `UserError` naming the first option that cannot work (an unknown, repeated or missing judge, a seed
        numpy cannot take, an absent weights file, an executor option)."""
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise UserError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
        if self.inception_weights is not None and not Path(self.inception_weights).is_file():
            raise UserError(f"Inception weights file {self.inception_weights} does not exist")
        judges = list(self.judges)
        unknown = [name for name in judges if name not in JUDGE_NAMES]
        if unknown:
            raise UserError(f"unknown judge {unknown[0]!r}; choose from {', '.join(JUDGE_NAMES)}")
        if CNN not in judges:
            raise UserError("the judges must include cnn: CAS, recognizability and the feature figures are the "
                            "bundled CNN's; add a second judge beside it, e.g. --judges cnn,resnet")
        if len(set(judges)) != len(judges):
            raise UserError(f"a judge is named twice in {','.join(judges)}")
        if self.executor is not None:
            self.executor.validate()
        official(self.dataset)

    def validated(self, synthetic_path: str | Path) -> "EvaluateOptions":
        """These options checked, with every default filled in and the judges in report order (the CNN first)."""
        from cifar_synth.classifier import EvaluatorConfig
        from cifar_synth.executors import ExecutorOptions
        from cifar_synth.judges import JudgeConfig

        self.validate()
        config = self.config or EvaluatorConfig.budget("default")
        judge_config = self.judge_config or JudgeConfig.budget(
            config.budget_name if config.budget_name in JudgeConfig.BUDGETS else "default")
        executor = self.executor or ExecutorOptions(unit="task")
        return replace(
            self, out_dir=Path(self.out_dir) if self.out_dir is not None else default_out_dir(synthetic_path),
            config=config, judge_config=judge_config, executor=executor,
            cache_dir=Path(self.cache_dir) if self.cache_dir else baseline_cache.default_cache_dir(),
            judges=tuple(name for name in JUDGE_NAMES if name in self.judges))


def evaluate_synthetic(synthetic_path: str | Path, options: EvaluateOptions = EvaluateOptions(),
                       reporter: Reporter | None = None) -> Report:
    """Evaluate the synthetic dataset at `synthetic_path` against the real data of its classes, as `options` say.

    Writes report.json, report.md and confusion_synthetic.png to `options.out_dir` and returns the report. Training
    progress goes to `reporter`; warnings go into the report and, as they arise, to `reporter.warn`.
    """
    from cifar_synth.card import update_card
    from cifar_synth.executors import engine_for
    from cifar_synth.executors.job import limit_threads
    from cifar_synth.judges import JUDGES

    started = time.perf_counter()
    options = options.validated(synthetic_path)
    executor, seed = options.executor, options.seed
    reporter = reporter or Reporter()
    warnings = _Warnings(reporter)
    manifest = _manifest(Path(synthetic_path))
    honesty = _honesty(manifest, options.allow_test_leak, warnings)
    if executor.in_process():
        engine = None
        limit_threads(executor.cpus())
    else:
        engine = engine_for(executor)  # before any work: a missing extra or an unreachable cluster fails first

    data = _load(synthetic_path, options.data_path, options.dataset, warnings)
    timings = {"load_seconds": time.perf_counter() - started}
    training = _Training.of(data, seed, options.cache_dir, options.use_cache, reporter)
    training_started = time.perf_counter()
    second_judges = options.judges[1:]
    trained = training.train(_fits(options.config, options.judge_config, second_judges, options.mix), engine,
                             executor, options.out_dir)
    training_seconds = time.perf_counter() - training_started
    baseline_model, classifiers = _cnn_classifiers(trained, timings)
    judge_reports = {name: _second_judge(trained, JUDGES[name], options.judge_config, timings)
                     for name in second_judges}
    if engine is not None:  # the wall time of the classifiers trained at once (each one's time is above)
        timings["parallel_training_seconds"] = training_seconds
    figures_started = time.perf_counter()
    recognizability, feature_metrics, diversity = _feature_figures(baseline_model, data, options.config.test_time_flip,
                                                                   seed)
    timings["feature_metrics_seconds"] = time.perf_counter() - figures_started
    inception_figure = _inception_figure(data, options, timings, warnings)
    audit = _audit(synthetic_path, data, options, timings, reporter, warnings)
    timings["total_seconds"] = time.perf_counter() - started

    report = Report(
        created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        headline=Headline(**_cas_figures(classifiers["synthetic"], classifiers["real"]),
                          mix_accuracy=classifiers["mix"].accuracy if options.mix else None),
        baseline_cached=classifiers["real"].cached, train_images_per_class=data.per_class,
        synthetic=_synthetic_provenance(synthetic_path, data, manifest), real_data=data.real.describe(), seed=seed,
        config=options.config.to_dict(), classifiers=classifiers, judges=judge_reports,
        recognizability=recognizability, feature_metrics=feature_metrics, inception_fid=inception_figure,
        diversity=diversity, audit=audit, honesty=honesty, warnings=warnings.messages, versions=package_versions(),
        timings=timings)
    report.save(options.out_dir)
    update_card(synthetic_path, report)  # an export's dataset card shows these figures
    return report


class _Warnings:
    """Collects the warnings for the report and passes each on to the user as it arises."""

    def __init__(self, reporter: Reporter):
        self.messages: list[str] = []
        self._reporter = reporter

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self._reporter.warn(message)


# --- the data ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Data:
    synthetic: LabeledImages
    real: "RealData"
    real_train: LabeledImages
    real_test: LabeledImages
    present: list[int]  # labels of the classes the synthetic data has
    missing: list[str]  # names of those it lacks
    per_class: int  # training images per class of every classifier


def _load(synthetic_path: str | Path, data_path: str | Path | None, dataset: str | None, warning: _Warnings) -> _Data:
    from cifar_synth.data import open_real_data
    from cifar_synth.synthetic import load_synthetic

    synthetic = load_synthetic(synthetic_path)
    names = synthetic.classes.names
    counts = np.bincount(synthetic.labels, minlength=len(names))
    present = [label for label in range(len(names)) if counts[label]]
    missing = [names[label] for label in range(len(names)) if not counts[label]]
    if missing:
        one = len(missing) == 1
        warning(f"the synthetic data has no images of {', '.join(missing)}: the synthetic-trained CNN never sees "
                f"{'this class' if one else 'these classes'}, so it scores (close to) 0 on {'its' if one else 'their'} "
                f"real test images, which counts in the CAS; the other per-class figures are given for the classes "
                f"present only")
    real = open_real_data(data_path, dataset=dataset)
    if not real.classes.same_as(synthetic.classes):
        raise UserError(f"{synthetic_path} is labelled with the {len(names)} classes of {synthetic.classes.dataset}, "
                        f"the real data ({real.source}) has the {len(real.classes)} of {real.classes.dataset}; "
                        "evaluate it against the data its generators trained on (--data, --dataset)")
    real_train, real_test = real.load("train"), real.load("test")
    per_class = int(min(np.bincount(real_train.labels, minlength=len(names)).min(), counts[present].min()))
    return _Data(synthetic, real, real_train, real_test, present, missing, per_class)


def _honesty(manifest: dict | None, allow_test_leak: bool, warning: _Warnings) -> list[str]:
    """Why the figures are not honest, by the export's manifest (empty: nothing known against them); a `UserError`
    when a generator saw the test split and `allow_test_leak` is not given."""
    leaked = test_leaks(manifest)
    if leaked and not allow_test_leak:
        raise UserError(f"the generators of {', '.join(leaked)} saw the test split (train --include-test), which "
                        "the evaluation scores on; pass --allow-test-leak to evaluate anyway, the report labelled "
                        "not honest")
    labels = ([f"{TEST_LEAK} ({', '.join(leaked)})"] if leaked else []) + unknown_provenance(manifest)
    for label in labels:
        warning(label)
    return labels


def _synthetic_provenance(synthetic_path: str | Path, data: _Data, manifest: dict | None) -> dict:
    names = data.synthetic.classes.names
    counts = np.bincount(data.synthetic.labels, minlength=len(names))
    return {"path": str(Path(synthetic_path).resolve()), "images": len(data.synthetic),
            "counts": dict(zip(names, counts.tolist())), "missing_classes": data.missing,
            "content_sha256": _content_sha256(data.synthetic), "manifest": manifest}


# --- training and testing ---------------------------------------------------------------------------------------------

def _fits(config, judge_config, second_judges: list[str], mix: bool) -> list[Fit]:
    """The classifiers to train, in the order they train in this process: the bundled CNN's, then each judge's."""
    cnn = CNN
    fits = [Fit(cnn, config, "real"), Fit(cnn, config, "synthetic")] + ([Fit(cnn, config, "mix")] if mix else [])
    return fits + [Fit(name, judge_config, train_set) for name in second_judges for train_set in ("real", "synthetic")]


@dataclass(frozen=True)
class _Training:
    """What every judge trains and is tested on (the same n images per class), and where its baseline is cached."""

    real: "RealData"
    real_train: LabeledImages  # n per class
    synthetic_train: LabeledImages  # n per class
    test: LabeledImages
    seed: int
    per_class: int
    cache_dir: Path
    use_cache: bool
    reporter: Reporter

    @classmethod
    def of(cls, data: _Data, seed: int, cache_dir: Path, use_cache: bool, reporter: Reporter) -> "_Training":
        return cls(data.real, subsample_per_class(data.real_train, data.per_class, seed),
                   subsample_per_class(data.synthetic, data.per_class, seed), data.real_test, seed, data.per_class,
                   cache_dir, use_cache, reporter)

    def parts(self, train_set: str) -> list[LabeledImages]:
        return [self.real_train if part == "real" else self.synthetic_train for part in TRAIN_SETS[train_set]]

    def train(self, fits: list[Fit], engine, executor: "ExecutorOptions", out_dir: Path) -> dict:
        """(model, result) of every fit by name, in order: cached baselines from the cache, the others trained here
        one after another or, given an `engine`, as its tasks at once; fresh baselines go into the cache. The
        models of fits other than baselines are None when trained as tasks (nothing needs them)."""
        trained = {fit.name: cached for fit in fits if (cached := self.cached(fit)) is not None}
        todo = [fit for fit in fits if fit.name not in trained]
        if engine is None:
            for fit in todo:
                model, result = train_and_test(fit, joined(self.parts(fit.train_set)), self.test, self.seed,
                                               self.reporter)
                trained[fit.name] = self.keep(fit, model, result)
        else:
            trained.update(self._train_as_tasks(todo, engine, executor, out_dir))
        return {fit.name: trained[fit.name] for fit in fits}

    def cached(self, fit: Fit):
        """The cached (model, result) of a baseline fit when the cache holds this exact baseline, else None."""
        if fit.train_set != "real" or not self.use_cache:
            return None
        _, entry = self._cache_entry(fit)
        if not baseline_cache.is_complete(entry):
            return None
        model, metrics = baseline_cache.load_entry(entry)
        return model, ClassifierResult.from_dict({**metrics, "cached": True, "cache_entry": str(entry)})

    def keep(self, fit: Fit, model, result: ClassifierResult):
        """A freshly trained fit's (model, result), a baseline stored in the cache first."""
        if fit.train_set == "real":
            key, entry = self._cache_entry(fit)
            if baseline_cache.store_entry(entry, key, model, result.to_dict(), self.reporter.warn):  # else warned
                result.cache_entry = str(entry)
        return model, result

    def _cache_entry(self, fit: Fit) -> tuple[dict, Path]:
        key = baseline_cache.baseline_key(fit.judge, self.real.sha256, self.seed, self.per_class,
                                          fit.config.to_dict(), self.real.classes)
        return key, baseline_cache.entry_dir(self.cache_dir, fit.judge, key)

    def _train_as_tasks(self, fits: list[Fit], engine, executor: "ExecutorOptions", out_dir: Path) -> dict:
        """Train `fits` as tasks of `engine`, the live board showing them; their data goes to the workers, and their
        models and results come back, through a work folder in the report directory's state directory."""
        from cifar_synth.executors.board import drive
        from cifar_synth.executors.job import STATE_DIR, read_status, start_session

        state_dir = Path(out_dir).absolute() / STATE_DIR
        session = start_session(state_dir)
        work = state_dir / f"work-{session}"
        try:
            jobs = fit_jobs(fits, self.parts, self.test, work, self.seed, state_dir, session, executor.cpus())
            try:
                drive(engine, [jobs], self.reporter)
            finally:  # after a failure too: the baselines trained meanwhile go into the cache
                trained = {job.name: self.keep(job.fit, *job.collect()) for job in jobs
                           if read_status(job).get("state") == "done"}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return trained


def _cnn_classifiers(trained: dict, timings: dict):
    """The bundled CNN's baseline model, and its classifiers' results: real, synthetic and, with --mix, both."""
    cnn = CNN
    classifiers = {train_set: trained[f"{cnn}-{train_set}"][1] for train_set in TRAIN_SETS
                   if f"{cnn}-{train_set}" in trained}
    baseline = classifiers["real"]
    timings["baseline_seconds"] = 0.0 if baseline.cached else baseline.train_seconds
    timings.update({f"{key}_seconds": classifiers[key].train_seconds for key in ("synthetic", "mix")
                    if key in classifiers})
    return trained[f"{cnn}-real"][0], classifiers


def _second_judge(trained: dict, judge: "Judge", config, timings: dict) -> JudgeReport:
    """The same CAS figures from another classifier family: its cached or fresh real baseline, its synthetic run."""
    baseline, synthetic = (trained[f"{judge.name}-{train_set}"][1] for train_set in ("real", "synthetic"))
    timings[f"{judge.name}_real_seconds"] = 0.0 if baseline.cached else baseline.train_seconds
    timings[f"{judge.name}_synthetic_seconds"] = synthetic.train_seconds
    return JudgeReport(description=judge.description, config=config.to_dict(), baseline_cached=baseline.cached,
                       **_cas_figures(synthetic, baseline), classifiers={"real": baseline, "synthetic": synthetic})


def _cas_figures(synthetic: ClassifierResult, real: ClassifierResult) -> dict:
    return {"cas": synthetic.accuracy, "baseline_accuracy": real.accuracy,
            "cas_ratio": synthetic.accuracy / real.accuracy if real.accuracy else None,
            "cas_top5": synthetic.top5_accuracy, "baseline_top5": real.top5_accuracy}


# --- figures in the real-trained CNN's features -----------------------------------------------------------------------

def _feature_figures(model, data: _Data, test_time_flip: bool, seed: int):
    """Recognizability, and the Fréchet distance, KID and diversity in the real-trained CNN's features."""
    from cifar_synth.classifier import FEATURE_LAYER, make_predictor

    real_test, synthetic = data.real_test, data.synthetic
    predict = make_predictor(model, test_time_flip)
    _, real_features = predict(real_test.images)
    synthetic_probabilities, synthetic_features = predict(synthetic.images)
    rng = np.random.default_rng(seed)
    names = synthetic.classes.names
    per_class = {name: None for name in names}
    fd, kid, diversity = dict(per_class), dict(per_class), dict(per_class)
    for label in data.present:
        real_class = real_features[real_test.labels == label]
        synthetic_class = synthetic_features[synthetic.labels == label]
        name = names[label]
        fd[name] = frechet_distance(real_class, synthetic_class)
        kid[name] = kernel_inception_distance(real_class, synthetic_class, rng)
        real_spread = sampled_pairwise_distance(real_class, rng)
        synthetic_spread = sampled_pairwise_distance(synthetic_class, rng)
        diversity[name] = {"synthetic": synthetic_spread, "real": real_spread,
                           "ratio": synthetic_spread / real_spread if real_spread else None}
    features = FeatureMetrics(
        note=NOT_INCEPTION_FID, features=f"real-trained CNN, layer '{FEATURE_LAYER}' ({real_features.shape[1]} "
                                         f"dimensions)",
        real_images=len(real_test), synthetic_images=len(synthetic),
        frechet_distance={"overall": frechet_distance(real_features, synthetic_features), "per_class": fd},
        kid={"overall": kernel_inception_distance(real_features, synthetic_features, rng), "per_class": kid})
    description = (f"mean pairwise Euclidean distance between the features of up to {DIVERSITY_SAMPLE} images of a "
                   "class; ratio = synthetic / real (well below 1: mode collapse)")
    return (Recognizability(**accuracy_figures(synthetic_probabilities.argmax(1), synthetic.labels, names)), features,
            Diversity(description=description, per_class=diversity))


def _audit(synthetic_path: str | Path, data: _Data, options: EvaluateOptions, timings: dict, reporter: Reporter,
           warning: _Warnings) -> dict:
    """The copy audit's figures (`cifar_synth.audit`); its closest pairs' CSV and picture go to `out_dir/audit/`."""
    from cifar_synth.audit import CopyDetector, audit_record, run_audit, save_audit, validation_fraction

    started = time.perf_counter()
    try:
        fraction, source = validation_fraction(Path(synthetic_path), data.real.sha256, None)
        detector = CopyDetector.calibrated(data.real_train, data.real.sha256, fraction, source,
                                           cache_dir=options.cache_dir, reporter=reporter)
    except UserError as error:  # not the data the generators trained on, or too small a validation slice
        warning(f"copy audit skipped: {error}")  # the other figures still stand
        return {"skipped": str(error)}
    audit = run_audit(data.synthetic, detector, options.seed)
    save_audit(audit, Path(options.out_dir) / "audit")
    timings["audit_seconds"] = time.perf_counter() - started
    return audit_record(audit)


def _inception_figure(data: _Data, options: EvaluateOptions, timings: dict, warning: _Warnings) -> dict:
    if not options.inception:
        return {"skipped": "not requested (--no-inception-fid)"}
    started = time.perf_counter()
    figure = inception_fid(data.real_test, data.synthetic, options.inception_weights, options.seed)
    timings["inception_fid_seconds"] = time.perf_counter() - started
    if "skipped" in figure:
        warning(figure["skipped"])
    return figure


# --- provenance -------------------------------------------------------------------------------------------------------

def _content_sha256(data: LabeledImages) -> str:
    """sha256 over the pixels and labels as loaded, whatever file format carried them."""
    digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    digest.update(data.labels.astype("<i8").tobytes())
    return digest.hexdigest()


def _manifest(path: Path) -> dict | None:
    """The export's manifest.json, if `path` is an export directory with one."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None  # load_synthetic has already accepted the data; an unreadable manifest only loses provenance
