"""The evaluation report: its typed form, its files (report.json, report.md, confusion picture), its number formats.

`Report` is what `evaluate_synthetic` returns and what `Report.load(path)` reads back from a report.json (the quality
protocol reads reports this way). report.json is `Report.to_dict()`: its keys are the field names below, nested.
"""

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cifar_synth.audit import audit_markdown
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, write_json_atomic

REPORT_JSON, REPORT_MD, CONFUSION_PNG = "report.json", "report.md", "confusion_synthetic.png"
REPORT_VERSION = 1
# With more classes than this, the terminal and report.md's summary name only the lowest and highest classes.
FULL_TABLE_CLASSES = 20
RANKED_CLASSES = 5  # how many lowest and highest
NOT_INCEPTION_FID = (
    "Fréchet distance and KID here are computed in the penultimate-layer features of this report's real-trained "
    "CNN, not in Inception-v3 features: they are not Inception FID and not comparable with published FID or KID "
    "values, only with reports that used the same evaluator configuration, seed and real data."
)


# --- number formats (shared with benchmarks/quality_protocol.py) -----------------------------------------------------

def percent(value) -> str:
    """0.873 → "87.3%", None → "–"."""
    return "–" if value is None else f"{value:.1%}"


def number(value, digits: int = 2) -> str:
    """1.23456 → "1.23" (`digits` decimals), None → "–"."""
    return "–" if value is None else f"{value:.{digits}f}"


def kid_cell(kid: "dict | None") -> str:
    """A KID entry ({"mean", "std", ...}) → "0.0123 ± 0.0004", None → "–"."""
    return "–" if kid is None else f"{kid['mean']:.4f} ± {kid['std']:.4f}"


# --- the typed report ------------------------------------------------------------------------------------------------

class _Record:
    """to_dict / from_dict for the report's dataclasses: nested dataclasses and dicts of them by their type hints."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _from_json(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)
                      if f.name in data})


def _from_json(hint, value):
    if isinstance(hint, type) and issubclass(hint, _Record):
        return hint.from_dict(value)
    if typing.get_origin(hint) is dict:
        _, value_hint = typing.get_args(hint)
        if isinstance(value_hint, type) and issubclass(value_hint, _Record):
            return {key: value_hint.from_dict(entry) for key, entry in value.items()}
    return value


@dataclass(kw_only=True)
class ClassifierResult(_Record):
    """One trained classifier tested on the real test split (rows of `confusion`: true class; columns: predicted)."""

    accuracy: float
    per_class_accuracy: dict[str, float | None]
    confusion: list[list[int]]
    top5_accuracy: float | None = None  # None: a dataset of 10 classes or fewer (metrics.TOP_K_ABOVE_CLASSES)
    train_images: int
    train_seconds: float
    cached: bool = False
    cache_entry: str | None = None  # baselines only: the baseline cache entry the classifier is (or was put) in


@dataclass(kw_only=True)
class Headline(_Record):
    cas: float  # the synthetic-trained CNN's accuracy on the real test images
    baseline_accuracy: float  # the real-trained CNN's
    cas_ratio: float | None
    cas_top5: float | None = None  # top-5 accuracies, for datasets of more than 10 classes
    baseline_top5: float | None = None
    mix_accuracy: float | None = None  # the real+synthetic-trained CNN's, with --mix


@dataclass(kw_only=True)
class JudgeReport(_Record):
    """The second judge's figures: its own CAS, baseline and ratio, and its two classifiers."""

    description: str
    config: dict
    baseline_cached: bool
    cas: float
    baseline_accuracy: float
    cas_ratio: float | None
    cas_top5: float | None = None
    baseline_top5: float | None = None
    classifiers: dict[str, ClassifierResult]  # "real" (its baseline) and "synthetic"


@dataclass(kw_only=True)
class Recognizability(_Record):
    """The real-trained CNN's accuracy on the synthetic images (GAN-test)."""

    accuracy: float
    per_class_accuracy: dict[str, float | None]
    confusion: list[list[int]]


@dataclass(kw_only=True)
class FeatureMetrics(_Record):
    note: str
    features: str
    real_images: int
    synthetic_images: int
    frechet_distance: dict  # {"overall": float | None, "per_class": {class: float | None}}
    kid: dict  # {"overall": KID entry | None, "per_class": {class: KID entry | None}}


@dataclass(kw_only=True)
class Diversity(_Record):
    description: str
    per_class: dict[str, dict | None]  # {"synthetic", "real", "ratio"} or None for a class with no images


@dataclass(kw_only=True)
class Report(_Record):
    report_version: int = REPORT_VERSION
    created: str
    headline: Headline
    baseline_cached: bool
    train_images_per_class: int
    synthetic: dict  # path, images, counts, missing_classes, content_sha256, manifest
    real_data: dict  # RealData.describe()
    seed: int
    config: dict  # the bundled CNN's EvaluatorConfig
    classifiers: dict[str, ClassifierResult]  # the bundled CNN's: "real", "synthetic" and, with --mix, "mix"
    judges: dict[str, JudgeReport] = field(default_factory=dict)  # the second judges that ran
    recognizability: Recognizability
    feature_metrics: FeatureMetrics
    inception_fid: dict  # {"value", "weights", "real_images", "synthetic_images", "note"} or {"skipped": why}
    diversity: Diversity
    audit: dict | None = None  # the copy audit's audit.json (cifar_synth.audit); None in reports from before it
    honesty: list[str] = field(default_factory=list)  # why the figures are not honest; empty: nothing known against
    warnings: list[str]
    versions: dict[str, str]
    timings: dict[str, float]

    @classmethod
    def load(cls, path: str | Path) -> "Report":
        """The report in `path`: a report.json, or a report directory holding one."""
        path = Path(path)
        path = path / REPORT_JSON if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"cannot read the evaluation report {path}: {error}") from None

    def save(self, out_dir: str | Path) -> None:
        """report.json, report.md and the confusion picture in `out_dir`, each written atomically."""
        out_dir = Path(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(out_dir / CONFUSION_PNG) as temp:
                _confusion_picture(np.array(self.classifiers["synthetic"].confusion), self.class_names, temp)
            with atomic_path(out_dir / REPORT_MD) as temp:
                temp.write_text(render_markdown(self))
            write_json_atomic(out_dir / REPORT_JSON, self.to_dict())
        except OSError as error:
            raise UserError(f"cannot write the report to {out_dir}: {error}") from None

    @property
    def class_names(self) -> list[str]:
        """The dataset's classes, in label order."""
        return list(self.recognizability.per_class_accuracy)

    def ranked_classes(self) -> list[str] | None:
        """With many classes, the `RANKED_CLASSES` lowest then highest by the synthetic-trained CNN's accuracy (a
        class without a figure counts as lowest); None when every class fits a table."""
        if len(self.class_names) <= FULL_TABLE_CLASSES:
            return None
        accuracy = self.classifiers["synthetic"].per_class_accuracy
        ranked = sorted(self.class_names, key=lambda name: -1 if accuracy[name] is None else accuracy[name])
        return ranked[:RANKED_CLASSES] + ranked[-RANKED_CLASSES:]

    def trained_columns(self) -> list[tuple[str, ClassifierResult]]:
        """(title, result) of every trained classifier, the bundled CNN's first, then the second judges'."""
        titles = {"real": "real-trained", "synthetic": "synthetic-trained", "mix": "real+synthetic-trained"}
        columns = [(title, self.classifiers[key]) for key, title in titles.items() if key in self.classifiers]
        columns += [(f"{name} {key}-trained", result)
                    for name, judge in self.judges.items() for key, result in judge.classifiers.items()]
        return columns


# --- report.md --------------------------------------------------------------------------------------------------------

def render_markdown(report: Report) -> str:
    """The report as Markdown a person can read, with the confusion picture beside it."""
    return "\n".join([*_title_and_setup(report), *_headline_table(report), *_per_class_table(report),
                      "## Confusion of the synthetic-trained CNN", "", f"![confusion matrix]({CONFUSION_PNG})", "",
                      *(audit_markdown(report.audit) if report.audit else []), *_warnings(report),
                      *_provenance(report)])


def _title_and_setup(report: Report) -> list[str]:
    config = report.config
    lines = [
        f"# Synthetic data evaluation: {Path(report.synthetic['path']).name}",
        "",
        *(line for label in report.honesty for line in (f"**{label}**", "")),
        f"- Synthetic data: `{report.synthetic['path']}` ({report.synthetic['images']:,} images)",
        f"- Real data: `{report.real_data['source']}` (sha256 `{report.real_data['sha256']}`)",
        f"- Training images per class for every CNN: {report.train_images_per_class:,} "
        f"(real+synthetic: that many of each)",
        f"- Evaluator: the bundled CNN, budget `{config['budget_name']}` ({_judge_build(config, True)}), seed "
        f"{report.seed}; baseline {_cache_word(report.baseline_cached)}",
    ]
    lines += [f"- Second judge `{name}`: {judge.description}; budget `{judge.config['budget_name']}` "
              f"({_judge_build(judge.config, False)}); baseline {_cache_word(judge.baseline_cached)}"
              for name, judge in report.judges.items()]
    return [*lines, ""]


def _judge_build(config: dict, cnn: bool) -> str:
    """Architecture, widths, epochs and precision of a judge's recorded config; a config recorded before these
    fields existed was the classic CNN's, in float32."""
    architecture = f"{config.get('architecture', 'classic')} architecture, " if cnn else ""
    return (f"{architecture}widths {config['widths']}, {config['epochs']} epochs, "
            f"{config.get('precision', 'float32')}")


def _cache_word(cached: bool) -> str:
    return "from cache" if cached else "trained now"


def _headline_table(report: Report) -> list[str]:
    head, features = report.headline, report.feature_metrics
    rows = [
        ("CAS: synthetic-trained accuracy on real test images", percent(head.cas)),
        ("baseline: real-trained accuracy on real test images", percent(head.baseline_accuracy)),
        ("CAS / baseline", number(head.cas_ratio, 3)),
        *_top5_rows("", head),
    ]
    for name, judge in report.judges.items():
        rows += [(f"second judge ({name}): CAS", percent(judge.cas)),
                 (f"second judge ({name}): real-trained baseline", percent(judge.baseline_accuracy)),
                 (f"second judge ({name}): CAS / baseline", number(judge.cas_ratio, 3)),
                 *_top5_rows(f"second judge ({name}): ", judge)]
    if head.mix_accuracy is not None:
        rows.append(("real+synthetic-trained accuracy on real test images", percent(head.mix_accuracy)))
    inception = report.inception_fid
    rows += [
        ("recognizability: real-trained accuracy on synthetic images", percent(report.recognizability.accuracy)),
        ("Fréchet distance in CNN features (not Inception FID)", number(features.frechet_distance["overall"])),
        ("KID in CNN features (not Inception KID)", kid_cell(features.kid["overall"])),
        ("Inception FID", number(inception["value"]) if "value" in inception
         else f"not computed: {inception['skipped']}"),
    ]
    return ["## Headline", "", "| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), "",
            f"**{NOT_INCEPTION_FID}**", ""]


def _top5_rows(prefix: str, figures) -> list[tuple[str, str]]:
    if figures.cas_top5 is None:
        return []
    return [(f"{prefix}CAS top-5", percent(figures.cas_top5)),
            (f"{prefix}baseline top-5", percent(figures.baseline_top5))]


def _per_class_table(report: Report) -> list[str]:
    columns = report.trained_columns()
    features, diversity = report.feature_metrics, report.diversity.per_class
    lines = [
        "## Per class",
        "",
        "Accuracy on real test images of each trained classifier (the bundled CNN's, then the second judge's); "
        "recognizability, Fréchet distance, KID and diversity of the synthetic images of each class (diversity "
        "ratio = synthetic / real mean pairwise feature distance; well below 1 means mode collapse).",
        "",
        *_ranked_text(report),
        "| class | " + " | ".join(title for title, _ in columns) + " | recognizability | FD | KID | diversity ratio |",
        "|---" * (len(columns) + 5) + "|",
    ]
    for name in report.class_names:
        accuracies = " | ".join(percent(result.per_class_accuracy[name]) for _, result in columns)
        ratio = diversity[name]["ratio"] if diversity[name] else None
        lines.append(
            f"| {name} | {accuracies} | {percent(report.recognizability.per_class_accuracy[name])} | "
            f"{number(features.frechet_distance['per_class'][name])} | "
            f"{kid_cell(features.kid['per_class'][name])} | {number(ratio)} |")
    return [*lines, ""]


def _ranked_text(report: Report) -> list[str]:
    """With many classes, a line naming the lowest and highest ones above the full table."""
    ranked = report.ranked_classes()
    if ranked is None:
        return []
    accuracy = report.classifiers["synthetic"].per_class_accuracy

    def named(names: list[str]) -> str:
        return ", ".join(f"{name} {percent(accuracy[name])}" for name in names)

    return [f"{len(report.class_names)} classes; by synthetic-trained accuracy the lowest are "
            f"{named(ranked[:RANKED_CLASSES])}, the highest {named(ranked[RANKED_CLASSES:])}.", ""]


def _warnings(report: Report) -> list[str]:
    return ["## Warnings", "", *(f"- {warning}" for warning in report.warnings), ""] if report.warnings else []


def _provenance(report: Report) -> list[str]:
    timings = ", ".join(f"{name.removesuffix('_seconds')} {seconds:.0f} s" for name, seconds in report.timings.items())
    versions = ", ".join(f"{name} {version}" for name, version in report.versions.items())
    return ["## Provenance", "", f"- Timings: {timings}", f"- Versions: {versions}",
            f"- Synthetic content sha256: `{report.synthetic['content_sha256']}`",
            "- Every figure, the configuration and the data checksums are in `report.json`.", ""]


def _confusion_picture(confusion: np.ndarray, class_names: list[str], path: Path) -> None:
    # The object-oriented Agg canvas, not pyplot: no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    many = len(class_names) > FULL_TABLE_CLASSES
    # Many classes: a larger figure with small labels and no numbers in the cells, which would not fit.
    figure = Figure(figsize=(16, 15) if many else (7.5, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if not many:
        for (i, j), value in np.ndenumerate(rows):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    font = 5 if many else None
    axes.set_xticks(range(len(class_names)), class_names, rotation=90 if many else 45, ha="center" if many else "right",
                    fontsize=font)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class (real test images)")
    axes.set_title("Synthetic-trained CNN on real test images (row-normalised)")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.savefig(path, format="png", dpi=110)
