"""The dataset card: the export root's README.md, which makes the folder a Hugging Face dataset repository.

Its YAML front matter tells `datasets.load_dataset(export_root)` (offline, or on the Hub) where the Parquet shards
are and that `img` is an Image and `label` a ClassLabel of the ten names; its body says how the data was made,
shows the sample sheet and, once `cifar-synth evaluate` has scored the export (`update_card`), its figures.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.files import atomic_path
from cifar_synth.formats.parquet import DATA_DIR
from cifar_synth.report import Report, number, percent
from cifar_synth.sheet import save_sample_sheet

CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
_RECIPE_FIELDS = (("loss", "loss"), ("latent_dim", "latent size"), ("g_width", "generator width"),
                  ("d_width", "discriminator width"), ("batch_size", "batch size"), ("g_learning_rate", "G lr"),
                  ("d_learning_rate", "D lr"), ("augment", "DiffAugment"), ("ema_decay", "EMA decay"),
                  ("precision", "precision"))


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
    from cifar_synth.synthetic import MANIFEST

    export_dir = Path(export_dir)
    if not (export_dir.is_dir() and (export_dir / CARD_FILE).is_file() and (export_dir / MANIFEST).is_file()):
        return False
    manifest = json.loads((export_dir / MANIFEST).read_text())
    _write(export_dir / CARD_FILE, render_card(manifest, report))
    return True


def render_card(manifest: dict, report: Report | None = None) -> str:
    """The card's Markdown: front matter, then what the data is, how it was made, how good it is, how to load it."""
    return "\n".join([_front_matter(manifest), _body(manifest), _quality(manifest, report), _files(manifest)])


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


# --- front matter ---------------------------------------------------------------------------------------------------

def _front_matter(manifest: dict) -> str:
    total = manifest["splits"]["train"]["num_examples"]
    lines = ["---", f"pretty_name: {_quoted(_title(manifest))}", "license: unknown",
             "task_categories:", "- image-classification", "tags:", "- synthetic", "- cifar10", "- gan",
             "- image", "size_categories:", f"- {_size_category(total)}"]
    if "parquet" in manifest["formats"]:
        parquet = [entry for entry in manifest["files"] if entry["format"] == "parquet"]
        num_bytes = manifest["splits"]["train"]["num_bytes"]
        lines += ["configs:", "- config_name: default", "  data_files:", "  - split: train",
                  f"    path: {DATA_DIR}/train-*", "dataset_info:", "  features:", "  - name: img",
                  "    dtype: image", "  - name: label", "    dtype:", "      class_label:", "        names:"]
        lines += [f"          '{label}': {name}" for label, name in enumerate(CLASS_NAMES)]
        lines += ["  splits:", "  - name: train", f"    num_bytes: {num_bytes}", f"    num_examples: {total}",
                  f"  download_size: {sum(entry['bytes'] for entry in parquet)}", f"  dataset_size: {num_bytes}"]
    return "\n".join([*lines, "---", ""])


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML scalar


def _size_category(total: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if total < bound:
            return name
    return "1M<n<10M"


# --- body -----------------------------------------------------------------------------------------------------------

def _title(manifest: dict) -> str:
    return f"Synthetic CIFAR-10: {manifest['name']}"


def _body(manifest: dict) -> str:
    classes = manifest["classes"]
    total = manifest["splits"]["train"]["num_examples"]
    names = ", ".join(entry["name"] for entry in classes)
    filtered = manifest["filter"]["method"] != "none"
    lines = [
        f"# {_title(manifest)}", "",
        f"{total:,} synthetic 32×32 colour images of {len(classes)} CIFAR-10 "
        f"{'class' if len(classes) == 1 else 'classes'} ({names}), {manifest['count_per_class']:,} per class, "
        "each drawn from a generator (a DCGAN) trained on the real CIFAR-10 training images of its class alone. "
        "None of them is a photograph. Labels are the class whose generator drew the image"
        + (", kept only when a real-trained classifier agreed (see Filter)." if filtered else "."), "",
        "Made with `cifar-synth export`; `manifest.json` beside this card records everything needed to regenerate "
        "each image.", "",
        "## Samples", "",
        "The first images of each class, one row per class:", "",
        f"![Sample sheet: one row of images per class]({SAMPLES_FILE})", "",
        "## How it was made", "",
        _generators_table(classes), "",
        f"- **Latents:** seed {manifest['seed']}, generator batch size {manifest['batch_size']}; "
        f"{manifest['latents']}.",
        f"- **Filter:** {_filter_text(manifest)}",
        f"- **Software:** {_versions_text(manifest['versions'])}.", "",
    ]
    return "\n".join(lines)


def _generators_table(classes: list[dict]) -> str:
    """Per class: recipe, training budget, real images, generator checksum; a recipe shared by all is said once."""
    configs = [entry.get("run_config") or {} for entry in classes]
    recipes = [_recipe(config.get("gan") or {}) for config in configs]
    shared = len(set(recipes)) == 1
    rows = [f"Recipe of every generator: {recipes[0] or 'not recorded'}.", ""] if shared else []
    rows += [f"| class |{'' if shared else ' recipe |'} training budget | real training images | generator sha256 |",
             f"|---|{'' if shared else '---|'}---|---|---|"]
    for entry, config, recipe in zip(classes, configs, recipes):
        training = config.get("training") or {}
        budget = ", ".join(part for part in (
            f"{training['epochs']} epochs" if training.get("epochs") is not None else "",
            f"{training['minutes']:g} min" if training.get("minutes") is not None else "",
            f"seed {training['seed']}" if training.get("seed") is not None else "") if part)
        images = f"{config['train_images']:,}" if isinstance(config.get("train_images"), int) else "–"
        recipe_cell = "" if shared else f" {recipe or '–'} |"
        rows.append(f"| {entry['name']} |{recipe_cell} {budget or '–'} | {images} | "
                    f"`{entry['generator']['sha256'][:12]}` |")
    return "\n".join(rows)


def _recipe(gan: dict) -> str:
    return ", ".join(f"{title} {gan[key]}" for key, title in _RECIPE_FIELDS if gan.get(key) not in (None, ""))


def _filter_text(manifest: dict) -> str:
    method = manifest["filter"]
    if method["method"] == "none":
        return "none: every generated image is kept."
    rates = ", ".join(f"{entry['name']} {entry['filter']['acceptance_rate']:.1%}" for entry in manifest["classes"])
    accepted = sum(entry["filter"]["accepted"] for entry in manifest["classes"])
    candidates = sum(entry["filter"]["candidates"] for entry in manifest["classes"])
    return (f"a real-trained classifier kept an image when {method['rule']} (min_confidence "
            f"{method['min_confidence']:g}). It accepted {accepted:,} of {candidates:,} candidates "
            f"({accepted / candidates:.1%}); per class: {rates}.")


def _versions_text(versions: dict) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


# --- quality --------------------------------------------------------------------------------------------------------

def _quality(manifest: dict, report: Report | None) -> str:
    lines = ["## How good it is", ""]
    if report is None:
        lines += ["Not evaluated yet. `cifar-synth evaluate --synthetic <this folder>` trains a CNN on these images, "
                  "tests it on the real CIFAR-10 test set and adds its figures here.", ""]
        return "\n".join(lines)
    head = report.headline
    lines += [
        f"Scored by `cifar-synth evaluate` ({report.created}): a CNN trained on {report.train_images_per_class} of "
        "these images per class, tested on the 10,000 real CIFAR-10 test images.", "",
        "| figure | value |", "|---|---|",
        f"| CAS (accuracy on real test images of the CNN trained on this data) | {percent(head.cas)} |",
        f"| baseline (the same CNN trained on as many real images) | {percent(head.baseline_accuracy)} |",
        f"| CAS / baseline | {number(head.cas_ratio)} |", "",
        "| class | synthetic-trained | real-trained |", "|---|---|---|",
    ]
    synthetic, real = (report.classifiers[key].per_class_accuracy for key in ("synthetic", "real"))
    lines += [f"| {name} | {percent(synthetic[name])} | {percent(real[name])} |" for name in CLASS_NAMES]
    lines += ["", "**Caveat.** These images are no substitute for real ones: a classifier trained on them alone reaches "
              "the CAS above, against the baseline's accuracy on real training images. The figures come from one "
              "evaluation run with one seed; a different seed moves them by a point or two."]
    if manifest["filter"]["method"] != "none":
        lines += ["", "This export was filtered with a real-trained classifier: the report's recognizability and "
                  "feature distances are biased by construction and are left out here; CAS stays honest, as the "
                  "filter never saw the real test images."]
    return "\n".join([*lines, ""])


# --- files ----------------------------------------------------------------------------------------------------------

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
        where = {"parquet": f"`{DATA_DIR}/train-*.parquet`", "csv": "`csv/train.csv`",
                 "images": "`images/<class>/<index>.png`"}[fmt]
        lines.append(f"| {fmt} | {where} | {sum(entry['rows'] for entry in entries):,} | "
                     f"{sum(entry['bytes'] for entry in entries):,} |")
    lines += ["", "Parquet: columns `img` (PNG bytes and a name `<class>/<index>.png`) and `label` (0–9 in CIFAR-10 "
              "order: " + ", ".join(CLASS_NAMES) + "). `images/` is the class-folder tree that Keras' "
              "`image_dataset_from_directory` and torchvision's `ImageFolder` read. The license is unknown, as that "
              "of CIFAR-10, from whose images the generators learned.", ""]
    return "\n".join(lines)
