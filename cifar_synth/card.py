"""The dataset card: the export root's README.md, which makes the folder a Hugging Face dataset repository.

Its YAML front matter tells `datasets.load_dataset(export_root)` (offline, or on the Hub) where the Parquet shards
are and that `img` is an Image and `label` a ClassLabel of the dataset's class names; its body says how the data was
made, shows the sample sheet and, once `cifar-synth evaluate` has scored the export (`update_card`), its figures.
"""

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cifar_synth.audit import audit_markdown
from cifar_synth.classes import Classes, classes_of
from cifar_synth.config import NO_INIT
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path
from cifar_synth.filtering import baseline_text
from cifar_synth.formats import FORMATS
from cifar_synth.formats.parquet import DATA_DIR
from cifar_synth.honesty import filter_trained_on
from cifar_synth.report import Report, number, percent
from cifar_synth.sheet import save_sample_sheet
from cifar_synth.synthetic import MANIFEST, read_manifest

CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
LICENSES = ("unknown", "other")  # the Hub's words for no licence identifier
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")  # SPDX-like, lower case as the Hub writes them: cc-by-4.0, mit
_LICENSE_HEADING = "## License"
_KRIZHEVSKY = ("CIFAR-10", "CIFAR-100")  # the datasets whose source the licence section can describe
_YAML_WORDS = ("true", "false", "yes", "no", "on", "off", "null", "y", "n")  # plain, YAML would not read a string
_COUNT_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# How the card's first paragraph ends, by filter: the classifier filters (classifier, selected) the last.
_KEPT = {"none": ".", "discriminator": ", kept with the probability its GAN's own discriminator gave it (see Filter)."}
_KEPT_BY_CLASSIFIER = ", kept only when a real-trained classifier agreed (see Filter)."
_RECIPE_FIELDS = (("loss", "loss"), ("latent_dim", "latent size"), ("g_width", "generator width"),
                  ("d_width", "discriminator width"), ("batch_size", "batch size"), ("g_learning_rate", "G lr"),
                  ("d_learning_rate", "D lr"), ("augment", "DiffAugment"), ("ema_decay", "EMA decay"),
                  ("flip", "horizontal flips of the real images"), ("guidance", "classifier guidance"),
                  ("precision", "precision"), ("spectral_norm", "spectral norm in D"),
                  ("class_aware", "class-aware shared start"))


def write_card(export_dir: Path, manifest: dict, samples: Sequence[np.ndarray]) -> None:
    """The sample sheet (`samples`: the first images of each class, in the manifest's class order) and the card."""
    save_sample_sheet(export_dir / SAMPLES_FILE,
                      [(entry["name"], images) for entry, images in zip(manifest["classes"], samples)])
    _write(export_dir / CARD_FILE, render_card(manifest))


def update_card(export_dir: str | Path, report: Report) -> bool:
    """Add an evaluation report's headline figures to the card of the export at `export_dir`.

    `report` is what `evaluate_synthetic` returns, or `Report.load(report_dir)` of its report.json. Returns False,
    changing nothing, when `export_dir` is not an export with a card (a single file, another tool's folder, an export
    of format version 1).
    """
    export_dir = Path(export_dir)
    if not (export_dir.is_dir() and (export_dir / CARD_FILE).is_file() and (export_dir / MANIFEST).is_file()):
        return False
    manifest = json.loads((export_dir / MANIFEST).read_text())
    _write(export_dir / CARD_FILE, render_card(manifest, report))
    return True


def render_card(manifest: dict, report: Report | None = None) -> str:
    """The card's Markdown: front matter, then what the data is, how it was made, how good it is, how to load it."""
    return "\n".join([_front_matter(manifest), _body(manifest), _quality(manifest, report), _files(manifest),
                      _license(manifest)])


def checked_license(license_id: str) -> str:
    """`license_id` as the card's front matter takes it (lower case), or a `UserError` (`--license`)."""
    license_id = license_id.strip().lower()
    if not _LICENSE_ID.fullmatch(license_id):
        raise UserError(f"--license must be a licence identifier such as cc-by-4.0 or mit, or one of "
                        f"{', '.join(LICENSES)}; got {license_id!r}")
    return license_id


def set_license(export_dir: str | Path, license_id: str) -> None:
    """Give the export at `export_dir` the licence `license_id`: in its manifest, its card's front matter and its
    card's licence section; the rest of the card, evaluation figures included, stays as it is."""
    export_dir = Path(export_dir)
    manifest = {**read_manifest(export_dir), "license": checked_license(license_id)}
    card = re.sub(r"^license: .*$", f"license: {manifest['license']}", (export_dir / CARD_FILE).read_text(),
                  count=1, flags=re.MULTILINE)
    before, heading, after = card.partition(_LICENSE_HEADING)
    if heading:
        card = before + _license(manifest) + (after[after.find("\n## ") + 1:] if "\n## " in after else "")
    else:  # a card written before cards had a licence section
        card = card.rstrip("\n") + "\n\n" + _license(manifest)
    _write(export_dir / CARD_FILE, card)
    _write(export_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


# --- front matter ---------------------------------------------------------------------------------------------------

def _dataset(manifest: dict) -> Classes:
    """The classes the export's labels are of (CIFAR-10's in exports from before manifests named them)."""
    return classes_of(manifest.get("dataset"), MANIFEST)


def _front_matter(manifest: dict) -> str:
    total = manifest["splits"]["train"]["num_examples"]
    dataset = _dataset(manifest)
    tag = [f"- {dataset.dataset.lower().replace('-', '')}"] if dataset.dataset in _KRIZHEVSKY else []
    lines = ["---", f"pretty_name: {_quoted(_title(manifest))}",
             f"license: {manifest.get('license', 'unknown')}",
             "task_categories:", "- image-classification", "tags:", "- synthetic", *tag, "- gan",
             "- image", "size_categories:", f"- {_size_category(total)}"]
    if "parquet" in manifest["formats"]:
        parquet = [entry for entry in manifest["files"] if entry["format"] == "parquet"]
        num_bytes = manifest["splits"]["train"]["num_bytes"]
        lines += ["configs:", "- config_name: default", "  data_files:", "  - split: train",
                  f"    path: {DATA_DIR}/train-*", "dataset_info:", "  features:", "  - name: img",
                  "    dtype: image", "  - name: label", "    dtype:", "      class_label:", "        names:"]
        lines += [f"          '{label}': {_yaml_scalar(name)}" for label, name in enumerate(dataset.names)]
        lines += ["  splits:", "  - name: train", f"    num_bytes: {num_bytes}", f"    num_examples: {total}",
                  f"  download_size: {sum(entry['bytes'] for entry in parquet)}", f"  dataset_size: {num_bytes}"]
    return "\n".join([*lines, "---", ""])


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML scalar


def _yaml_scalar(text: str) -> str:
    """`text` plain where YAML reads it back as that string (letters, digits, spaces, underscores), else quoted."""
    plain = re.fullmatch(r"[^\W\d][\w ]*", text) and text.strip().lower() not in _YAML_WORDS and text == text.strip()
    return text if plain else _quoted(text)


def _size_category(total: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if total < bound:
            return name
    return "1M<n<10M"


# --- body -----------------------------------------------------------------------------------------------------------

def _title(manifest: dict) -> str:
    return f"Synthetic {_dataset(manifest).dataset}: {manifest['name']}"


def _body(manifest: dict) -> str:
    classes = manifest["classes"]
    total = manifest["splits"]["train"]["num_examples"]
    names = ", ".join(entry["name"] for entry in classes)
    lines = [
        f"# {_title(manifest)}", "",
        f"{total:,} synthetic 32×32 colour images of {len(classes)} {_dataset(manifest).dataset} "
        f"{'class' if len(classes) == 1 else 'classes'} ({names}), {manifest['count_per_class']:,} per class, "
        "each drawn from a generator (a DCGAN) of its class, trained as *How it was made* says. "
        "None of them is a photograph. Labels are the class whose generator drew the image"
        + _KEPT.get(manifest["filter"]["method"], _KEPT_BY_CLASSIFIER), "",
        "Made with `cifar-synth export`; `manifest.json` beside this card records everything needed to regenerate "
        "each image.", "",
        "## Samples", "",
        "The first images of each class, one row per class:", "",
        f"![Sample sheet: one row of images per class]({SAMPLES_FILE})", "",
        "## How it was made", "",
        _generators_table(classes), "",
        *_shared_start_text(classes, len(_dataset(manifest))),
        f"- **Latents:** seed {manifest['seed']}, generator batch size {manifest['batch_size']}; "
        f"{manifest['latents']}.",
        f"- **Filter:** {_filter_text(manifest)}",
        f"- **Software:** {_versions_text(manifest['versions'])}.", "",
    ]
    return "\n".join(lines)


def _generators_table(classes: list[dict]) -> str:
    """Per class: recipe, where training started, what it trained, its budget, its real images, whether it saw the
    test split, the generator's checksum; a recipe shared by all is said once."""
    configs = [entry.get("run_config") or {} for entry in classes]
    recipes = [_recipe(config.get("gan") or {}) for config in configs]
    shared = len(set(recipes)) == 1
    rows = [f"Recipe of every generator: {recipes[0] or 'not recorded'}.", ""] if shared else []
    rows += [f"| class |{'' if shared else ' recipe |'} started from | trained | budget | real training images "
             "| saw the test split | generator sha256 |",
             f"|---|{'' if shared else '---|'}---|---|---|---|---|---|"]
    for entry, config, recipe in zip(classes, configs, recipes):
        cells = [entry["name"], *([] if shared else [recipe or "–"]), _start_text(entry, config),
                 _trained_text(entry.get("trained")), _budget_text(config.get("training") or {}),
                 _real_images_text(config), _test_split_text(config), f"`{entry['generator']['sha256'][:12]}`"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _recipe(gan: dict) -> str:
    parts = []
    for key, title in _RECIPE_FIELDS:
        value = gan.get(key)
        if value in (None, "") or (key == "guidance" and not value):
            continue
        parts.append(f"{title} {'on' if value else 'off'}" if isinstance(value, bool) else f"{title} {value}")
    return ", ".join(parts)


def _start_text(entry: dict, config: dict) -> str:
    """Where the class's training started: random weights, the shared start or another run (as far as recorded)."""
    start = entry.get("started_from")
    if start is None:
        init_from = (config.get("training") or {}).get("init_from")
        # None: random weights in runs before the shared start became the default (a start is recorded since)
        return "random weights" if config and init_from in (None, NO_INIT) else "not recorded"
    steps = f"{_plural(start['steps'], 'step')}, " if start.get("steps") is not None else ""
    after = f"epoch {start['epoch']} ({steps}{start['images_seen']:,} images seen)"
    return f"the shared start after its {after}" if start.get("shared_start") else f"run `{start['run']}` after its {after}"


def _trained_text(trained: dict | None) -> str:
    if not trained:
        return "not recorded"
    return (f"{_plural(trained['steps'], 'step')}, {_plural(trained['epochs'], 'epoch')}, "
            f"{trained['images_seen']:,} images seen")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _budget_text(training: dict) -> str:
    minutes = training.get("minutes")
    return ", ".join(part for part in (
        _plural(training["epochs"], "epoch") if training.get("epochs") is not None else "",
        f"{training['steps']:,} steps" if training.get("steps") is not None else "",
        f"{minutes:g} min ({training.get('budget_clock', 'wall')} clock)" if minutes is not None else "",
        f"seed {training['seed']}" if training.get("seed") is not None else "") if part) or "–"


def _real_images_text(config: dict) -> str:
    images = config.get("train_images")
    text = f"{images:,} of its class" if isinstance(images, int) else "–"
    validation = (config.get("data") or {}).get("validation")
    if isinstance(validation, dict) and validation.get("images"):
        text += f"; {validation['images']:,} more held out for validation, never trained on"
    return text


def _test_split_text(config: dict) -> str:
    """Whether the generator saw its dataset's test split; runs made before `saw_test_split` was recorded say so only
    when their settings show it (`include_test`), since a resume or a start from another run could hide it."""
    saw = config.get("saw_test_split")
    if saw is not None:
        return "yes" if saw else "no"
    return "yes" if (config.get("training") or {}).get("include_test") else "not recorded"


def _shared_start_text(classes: list[dict], dataset_classes: int) -> list[str]:
    """A note on the shared start, for the classes that started from it: it saw every class's images."""
    started = [entry for entry in classes if (entry.get("started_from") or {}).get("shared_start")]
    if not started:
        return []
    images = {entry["started_from"].get("train_images") for entry in started}
    seen = f"{images.pop():,} real training images" if len(images) == 1 and None not in images else \
        "the real training images"
    count = _COUNT_WORDS[dataset_classes] if dataset_classes < len(_COUNT_WORDS) else f"{dataset_classes:,}"
    class_aware = all(((entry.get("run_config") or {}).get("gan") or {}).get("class_aware") for entry in started)
    kind = ("class-conditional DCGAN (each class its own batch-norm scales and discriminator projection, fixed to "
            "the class when a class starts from it)") if class_aware else "DCGAN"
    return [f"The shared start is one {kind} trained first on {seen} of all {count} classes together; "
            f"{', '.join(entry['name'] for entry in started)} then trained from its weights on the images of "
            f"{'its' if len(started) == 1 else 'their'} class alone (\"trained\" counts those steps only).", ""]


def _filter_text(manifest: dict) -> str:
    method = manifest["filter"]
    if method["method"] == "none":
        return _copies_text(method) or "none: every generated image is kept."
    rates = ", ".join(f"{entry['name']} {entry['filter']['acceptance_rate']:.1%}" for entry in manifest["classes"])
    accepted = sum(entry["filter"]["accepted"] for entry in manifest["classes"])
    candidates = sum(entry["filter"]["candidates"] for entry in manifest["classes"])
    judged = _discriminator_text(method) if method["method"] == "discriminator" else _classifier_text(method)
    return (f"{judged}It accepted {accepted:,} of {candidates:,} candidates ({accepted / candidates:.1%}); per class: "
            f"{rates}." + (f" Of those it accepted, {_copies_text(method)}" if "copies" in method else ""))


def _classifier_text(method: dict) -> str:
    if method.get("min_confidence_per_class"):
        thresholds = ("min_confidence per class, chosen by `cifar-synth select` on the validation slice of the "
                      "training split: " + ", ".join(f"{name} {value:g}" for name, value in
                                                      method["min_confidence_per_class"].items()))
    else:
        thresholds = f"min_confidence {method['min_confidence']:g}"
    trained_on = method["classifier"].get("trained_on")
    return (f"a real-trained classifier kept an image when {method['rule']} ({thresholds}). "
            + (f"The classifier was trained on {trained_on}{_baseline(method['classifier'])}. " if trained_on else ""))


def _discriminator_text(method: dict) -> str:
    return (f"discriminator rejection sampling ({method['reference']}), no classifier: each candidate was kept with "
            "the probability its class's own GAN discriminator gave it, which aims to move the generator's "
            "distribution toward the real images' (exactly so only for an optimal discriminator). Which "
            f"discriminator: {method['discriminator']}. Rule: {method['rule']} (epsilon {method['epsilon']:g}, "
            f"percentile {method['percentile']:g}, burn-in of up to {method['burn_in']:,} candidates; each class's "
            "burn-in, D̃*_max and gamma are in manifest.json). ")


def _copies_text(method: dict) -> str:
    """What `export --exclude-copies` dropped, in words; empty when it was not asked for."""
    if "copies" not in method:
        return ""
    excluded = method["copies"]["excluded"]
    return (f"the copy audit dropped {sum(excluded.values()):,} candidates as copies of training images ("
            + ", ".join(f"{name} {count:,}" for name, count in excluded.items())
            + f"; `export --exclude-copies`): {method['copies']['rule']}.")


def _baseline(classifier: dict) -> str:
    """" (default budget, 5,000 training images per class …)" for a cached baseline of the evaluator, else ""."""
    return f" ({baseline_text(classifier['baseline'])})" if classifier.get("baseline") else ""


def _versions_text(versions: dict) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


# --- quality --------------------------------------------------------------------------------------------------------

def _quality(manifest: dict, report: Report | None) -> str:
    lines = ["## How good it is", ""]
    if report is None:
        lines += ["Not evaluated yet. `cifar-synth evaluate --synthetic <this folder>` trains a CNN on these images, "
                  f"tests it on the real {_dataset(manifest).dataset} test set and adds its figures here.", ""]
        return "\n".join(lines)
    head = report.headline
    lines += [
        f"Scored by `cifar-synth evaluate` ({report.created}): a CNN trained on {report.train_images_per_class} of "
        f"these images per class, tested on {_test_images_text(report, _dataset(manifest))}.", "",
        "| figure | value |", "|---|---|",
        f"| CAS (accuracy on real test images of the CNN trained on this data) | {percent(head.cas)} |",
        f"| baseline (the same CNN trained on as many real images) | {percent(head.baseline_accuracy)} |",
        f"| CAS / baseline | {number(head.cas_ratio)} |",
        *([f"| CAS top-5 (true class among the CNN's five most probable) | {percent(head.cas_top5)} |",
           f"| baseline top-5 | {percent(head.baseline_top5)} |"] if head.cas_top5 is not None else []), "",
    ]
    ranked = report.ranked_classes()
    if ranked is not None:
        lines += [f"The {len(ranked) // 2} lowest and the {len(ranked) // 2} highest of its "
                  f"{len(report.class_names)} classes by synthetic-trained accuracy (every class is in the "
                  "evaluation's report.md):", ""]
    lines += ["| class | synthetic-trained | real-trained |", "|---|---|---|"]
    synthetic, real = (report.classifiers[key].per_class_accuracy for key in ("synthetic", "real"))
    lines += [f"| {name} | {percent(synthetic[name])} | {percent(real[name])} |"
              for name in ranked or report.class_names]
    lines += ["", "**Caveat.** These images are no substitute for real ones: a classifier trained on them alone reaches "
              "the CAS above, against the baseline's accuracy on real training images. The figures come from one "
              "evaluation run with one seed; a different seed moves them by a point or two."]
    if "classifier" in manifest["filter"]:
        known = filter_trained_on(manifest["filter"]["classifier"]) is not None
        why = ("CAS stays honest, as the filter's classifier, trained on the training split, never saw the real test "
               "images." if known else
               "the filter's classifier was given as a file whose training data cifar-synth does not know, so CAS is "
               "honest only if that classifier never saw the real test images.")
        lines += ["", "This export was filtered with a real-trained classifier: the report's recognizability and "
                  f"feature distances are biased by construction and are left out here; {why}"]
    return "\n".join([*lines, "", *(audit_markdown(report.audit) if report.audit else [])])


def _test_images_text(report: Report, dataset: Classes) -> str:
    """How many real test images the evaluation used, from its report (an evaluation may use part of the split)."""
    counts = (report.real_data.get("counts") or {}).get("test")
    if not counts:
        return f"real {dataset.dataset} test images"
    return f"the {sum(counts.values()):,} real {dataset.dataset} test images of its data"


# --- files and licence ---------------------------------------------------------------------------------------------

def _files(manifest: dict) -> str:
    lines = ["## Loading it", ""]
    if "parquet" in manifest["formats"]:
        lines += ["```python", "from datasets import load_dataset", "",
                  'dataset = load_dataset("path/to/this/folder", split="train")  # or "user/name" on the Hub',
                  'dataset.features["label"].int2str(dataset[0]["label"]), dataset[0]["img"]  # name, PIL image',
                  "```", ""]
    lines += ["| format | where | rows | bytes |", "|---|---|---|---|"]
    for fmt in manifest["formats"]:
        entries = [entry for entry in manifest["files"] if entry["format"] == fmt]
        lines.append(f"| {fmt} | {FORMATS[fmt].where} | {sum(entry['rows'] for entry in entries):,} | "
                     f"{sum(entry['bytes'] for entry in entries):,} |")
    lines += ["", " ".join(FORMATS[fmt].describe(_dataset(manifest)) for fmt in manifest["formats"]), ""]
    return "\n".join(lines)


def _license(manifest: dict) -> str:
    """The licence section: the identifier the export was given, and what is known of the source data's terms."""
    license_id = manifest.get("license", "unknown")
    lead = {
        "unknown": "The licence of these images is unknown (`license: unknown`).",
        "other": "These images are published under terms of their publisher's own (`license: other`), given with "
                 "`--license other`.",
    }.get(license_id, f"These images are published as `{license_id}`, the licence their publisher gave with "
                      "`--license`; a publisher can license only what is theirs to license.")
    dataset = _dataset(manifest).dataset
    if dataset in _KRIZHEVSKY:
        source = (f"The generators learned from {dataset} (Krizhevsky, 2009), which its authors distribute at "
                  "https://www.cs.toronto.edu/~kriz/cifar.html with no licence file and no licence terms stated. Its "
                  "images are a labelled subset of the 80 Million Tiny Images collection, which was gathered "
                  "automatically from the web through image search engines and was withdrawn by its authors in 2020; "
                  "neither collection states that the photographs' rights holders licensed them. Whether rights in "
                  "those photographs extend to images a network generates after training on them is not settled.")
    else:
        source = (f"The generators learned from {dataset}, a class-folder dataset whose origin and terms cifar-synth "
                  "does not know: they are its publisher's, to be checked before these images are shared. Whether "
                  "rights in its images extend to images a network generates after training on them is not settled.")
    return "\n".join([_LICENSE_HEADING, "", lead, source, ""])
