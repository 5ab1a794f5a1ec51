"""What makes an export shareable: its dataset card and sample sheet, `show`, `publish` (at the HfApi boundary:
tests never reach the Hub), the Python API and `--version`."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, python_env, run_export
from PIL import Image
from typer.testing import CliRunner

import cifar_synth
from cifar_synth.card import render_card, update_card
from cifar_synth.cli import app
from cifar_synth.classes import CIFAR10
from cifar_synth.sampling import first_images
from cifar_synth.report import ClassifierResult, Diversity, FeatureMetrics, Headline, Recognizability, Report
from cifar_synth.reporter import Reporter
from cifar_synth.synthetic import load_synthetic


@pytest.fixture(scope="module")
def export_dir(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("share") / "export"
    assert run_export(runs, out, "--class", "dog", "--class", "truck").exit_code == 0
    return out


def front_matter(card: str) -> dict:
    yaml = pytest.importorskip("yaml")
    head, _, _ = card.removeprefix("---\n").partition("\n---\n")
    return yaml.safe_load(head)


def test_the_card_describes_the_data_for_the_hub(export_dir):
    card = (export_dir / "README.md").read_text()
    meta = front_matter(card)
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train",
                                                                          "path": "data/train-*"}]}]
    features = meta["dataset_info"]["features"]
    assert features[0] == {"name": "img", "dtype": "image"}
    assert features[1]["dtype"]["class_label"]["names"]["5"] == "dog"
    split = meta["dataset_info"]["splits"][0]
    assert split["name"] == "train" and split["num_examples"] == 40
    assert split["num_bytes"] > 40 * 100
    assert "synthetic" in meta["tags"] and meta["task_categories"] == ["image-classification"]
    assert meta["license"] == "unknown"
    assert "![Sample sheet" in card and "(samples.png)" in card
    assert "Not evaluated yet" in card and "seed 0" in card


def test_the_sample_sheet_shows_the_first_images_of_each_class(export_dir, runs):
    sheet = np.asarray(Image.open(export_dir / "samples.png"))
    assert sheet.shape[0] == 2 * (64 + 2) + 2  # two classes, 32×32 images shown at 2×
    first_dog = sheet[2:66, 96:160:2][::2]
    np.testing.assert_array_equal(first_dog, load_synthetic(export_dir).images[0])


def scored(per_class: dict, real_per_class: dict) -> Report:
    """A report with the figures the card shows; the rest is empty."""

    def result(accuracies: dict) -> ClassifierResult:
        return ClassifierResult(accuracy=0.5, per_class_accuracy=accuracies, confusion=[], train_images=200,
                                train_seconds=1.0)

    return Report(created="2026-11-27T10:00:00+00:00", train_images_per_class=20,
                  headline=Headline(cas=0.3125, baseline_accuracy=0.625, cas_ratio=0.5), baseline_cached=True,
                  classifiers={"synthetic": result(per_class), "real": result(real_per_class)}, synthetic={},
                  real_data={}, seed=0, config={},
                  recognizability=Recognizability(accuracy=0.5, per_class_accuracy=per_class, confusion=[]),
                  feature_metrics=FeatureMetrics(note="", features="", real_images=0, synthetic_images=0,
                                                 frechet_distance={}, kid={}),
                  inception_fid={}, diversity=Diversity(description="", per_class={}), warnings=[], versions={},
                  timings={})


def test_evaluating_updates_the_card(export_dir, tmp_path):
    per_class = dict.fromkeys(CIFAR10.names, 0.5)
    report = scored(per_class, {**per_class, "dog": 0.75})
    assert update_card(export_dir, report)
    card = (export_dir / "README.md").read_text()
    assert "| CAS (accuracy on real test images of the CNN trained on this data) | 31.2% |" in card
    assert "| CAS / baseline | 0.50 |" in card and "| dog | 50.0% | 75.0% |" in card
    assert "Caveat" in card and "Not evaluated yet" not in card and "top-5" not in card  # 10 classes: no top-5
    assert card.startswith(render_card(json.loads((export_dir / "manifest.json").read_text()))[:200])
    assert not update_card(tmp_path, report)  # not an export: nothing to update
    top5 = dataclasses.replace(report.headline, cas_top5=0.7, baseline_top5=0.9)
    assert update_card(export_dir, dataclasses.replace(report, headline=top5))
    card = (export_dir / "README.md").read_text()
    assert "| CAS top-5 (true class among the CNN's five most probable) | 70.0% |" in card
    assert "| baseline top-5 | 90.0% |" in card


def test_evaluate_puts_its_figures_into_the_card_of_the_export(runs, real_tree, tmp_path):
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.evaluator import EvaluateOptions, evaluate_synthetic

    out = tmp_path / "export"
    assert run_export(runs, out, "--class", "dog", "--class", "truck").exit_code == 0
    tiny = EvaluatorConfig(widths=(4, 4, 8, 8), epochs=1, batch_size=32)
    options = EvaluateOptions(real_tree, tmp_path / "report", tiny, cache_dir=tmp_path / "cache", inception=False,
                              judges=("cnn",))
    report = evaluate_synthetic(out, options, Reporter(quiet=True))
    card = (out / "README.md").read_text()
    assert f"| CAS (accuracy on real test images of the CNN trained on this data) | {report.headline.cas:.1%} |" \
        in card and "Not evaluated yet" not in card
    assert "tested on the 160 real CIFAR-10 test images of its data" in " ".join(card.split())  # 16 per class


def test_show_draws_a_sheet_from_runs_or_from_an_export(runs, export_dir, tmp_path):
    sheet = tmp_path / "runs.png"
    result = CliRunner().invoke(app, ["show", str(runs), "--count", "4", "--out", str(sheet)])
    assert result.exit_code == 0, result.output
    pixels = np.asarray(Image.open(sheet))
    assert pixels.shape == (3 * 66 + 2, 96 + 4 * 66, 3)
    np.testing.assert_array_equal(pixels[2 + 66:2 + 66 + 64:2, 96:160:2], first_images(runs, "dog", 1)[0])

    from_export = tmp_path / "export.png"
    assert CliRunner().invoke(app, ["show", str(export_dir), "--out", str(from_export)]).exit_code == 0
    assert Image.open(from_export).size == (96 + 10 * 66, 2 * 66 + 2)
    assert_user_error(CliRunner().invoke(app, ["show", str(tmp_path / "nothing")]), "does not exist")


class FakeHfApi:
    """Records the calls `publish` makes at the HfApi boundary."""

    calls: list = []
    fail_upload: Exception | None = None

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        if self.fail_upload is not None:
            raise self.fail_upload


@pytest.fixture
def hub(monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    FakeHfApi.calls, FakeHfApi.fail_upload = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    return FakeHfApi


def test_publish_creates_the_dataset_repo_and_uploads_the_folder(export_dir, hub):
    result = CliRunner().invoke(app, ["publish", str(export_dir), "--repo", "someone/synthetic-cifar", "--private"])
    assert result.exit_code == 0, result.output
    assert "Published" in result.output and "datasets/someone/synthetic-cifar" in result.output
    assert hub.calls == [
        ("init", "hf_test_token"),
        ("create_repo", "someone/synthetic-cifar", {"repo_type": "dataset", "private": True, "exist_ok": True}),
        ("upload_folder", {"repo_id": "someone/synthetic-cifar", "repo_type": "dataset", "folder_path": export_dir,
                           "commit_message": "Upload export with cifar-synth"}),
    ]


def test_publish_without_a_token_or_network_says_so_in_one_line(export_dir, hub, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    args = ["publish", str(export_dir), "--repo", "someone/synthetic-cifar"]
    assert_user_error(CliRunner().invoke(app, args), "no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    assert hub.calls == []

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    hub.fail_upload = ConnectionError("[Errno -3] Temporary failure in name resolution")
    result = CliRunner().invoke(app, args)
    assert_user_error(result, "publishing")
    assert "Temporary failure in name resolution; nothing is published" in " ".join(result.output.split())
    assert "Published" not in result.output


@pytest.mark.parametrize("case", ["bad repo", "not an export", "old export"])
def test_publish_refuses_what_it_cannot_publish(export_dir, hub, tmp_path, case):
    folder, repo, message = {
        "bad repo": (export_dir, "no-slash", "--repo must look like USER/NAME, got 'no-slash'"),
        "not an export": (tmp_path, "a/b", "is not a cifar-synth export (no manifest.json)"),
        "old export": (tmp_path, "a/b", "has no dataset card (README.md)"),
    }[case]
    if case == "old export":
        (tmp_path / "manifest.json").write_text("{}")
    assert_user_error(CliRunner().invoke(app, ["publish", str(folder), "--repo", repo]), message)
    assert hub.calls == []


def test_version_and_a_light_python_api():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"cifar-synth {cifar_synth.__version__}\n"
    # Importing the package and naming its API loads no TensorFlow until a function is used.
    code = ("import sys, cifar_synth\nfrom cifar_synth import ExportOptions, load_synthetic, update_card\n"
            "print('tensorflow' in sys.modules, sorted(set(cifar_synth.__all__) - set(dir(cifar_synth))))")
    output = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "False []"
    for name in cifar_synth.__all__:
        assert getattr(cifar_synth, name) is not None
    with pytest.raises(AttributeError):
        cifar_synth.no_such_function


# --- how the data was made, and only that: the card and manifest of a class trained from the shared start -----------

@pytest.fixture(scope="module")
def shared_start_export(real_tree, tmp_path_factory) -> Path:
    """dog trained for one epoch from a shared start trained for one epoch (tiny networks), exported under a licence."""
    from conftest import TINY_GAN_CLI

    runs = tmp_path_factory.mktemp("shared-start") / "runs"
    train = ["train", "--epochs", "1", "--data", str(real_tree), "--runs", str(runs), *TINY_GAN_CLI,
             "--class", "shared", "--class", "dog", "--init-from", "shared"]
    result = CliRunner().invoke(app, train)
    assert result.exit_code == 0, result.output
    out = runs.parent / "export"
    assert run_export(runs, out, "--license", "CC-BY-4.0").exit_code == 0
    return out


def walk(value, where: str = ""):
    """(where, key or value) of every dict key and every scalar in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key}", key
            yield from walk(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{where}[{index}]")
    else:
        yield where, value


def test_the_manifest_names_no_machine(shared_start_export):
    import socket

    text = (shared_start_export / "manifest.json").read_text()
    manifest = json.loads(text)
    for where, value in walk(manifest):
        assert value != "host", where
        if isinstance(value, str):
            assert not value.startswith("/") and socket.gethostname() != value, (where, value)
    assert str(shared_start_export.parent) not in text
    dog = manifest["classes"][0]
    assert dog["generator"]["path"] == "dog/generator.keras"
    assert dog["run_config"]["sessions"][0]["started_from"]["run"] == "shared"
    assert dog["run_config"]["data"]["source"] == "cifar10"  # outside the runs folder: its name, and a note
    assert "classes[0].run_config.data.source" in manifest["paths"]["outside_it_reduced_to_name"]


def test_the_card_says_how_each_generator_was_made(shared_start_export):
    manifest = json.loads((shared_start_export / "manifest.json").read_text())
    dog = manifest["classes"][0]
    # 16 dog images less the validation slice's 1, batches of 8; the shared start: 150 of all ten classes
    assert dog["trained"] == {"steps": 1, "images_seen": 8, "epochs": 1}
    assert dog["started_from"] | {"generator_sha256": None, "saw_test_split": False} == {
        "run": "shared", "epoch": 1, "images_seen": 144, "generator_sha256": None, "shared_start": True,
        "train_images": 150, "steps": 18, "saw_test_split": False}
    card = " ".join((shared_start_export / "README.md").read_text().split())
    assert meta_license(shared_start_export) == "cc-by-4.0"
    row = "| dog | the shared start after its epoch 1 (18 steps, 144 images seen) | 1 step, 1 epoch, 8 images seen " \
          "| 1 epoch, seed 0 | 15 of its class; 1 more held out for validation, never trained on |"
    assert f"{row} no |" in card or f"{row} not recorded |" in card  # "no" once training records saw_test_split
    assert "trained first on 150 real training images of all ten classes together" in card
    assert "horizontal flips of the real images on" in card
    assert "of its class alone." not in card.split("## How it was made")[0]
    assert "images/" not in card and "csv/" not in card  # only Parquet was written
    assert "These images are published as `cc-by-4.0`" in card and "without a licence" not in card
    assert "no licence file" in card and "80 Million Tiny Images" in card


def meta_license(export: Path) -> str:
    return front_matter((export / "README.md").read_text())["license"]


def test_the_card_renders_the_newer_run_fields(export_dir):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    config = {"gan": {"batch_size": 8}, "train_images": 4500, "saw_test_split": True,
              "data": {"validation": {"fraction": 0.1, "seed": 0, "images": 500}},
              "training": {"epochs": None, "steps": 3000, "minutes": 6.0, "budget_clock": "cpu", "seed": 1,
                           "init_from": None}}
    manifest["classes"] = [{**entry, "run_config": config, "trained": None, "started_from": None}
                           for entry in manifest["classes"]]
    card = " ".join(render_card(manifest).split())
    assert "| dog | random weights | not recorded | 3,000 steps, 6 min (cpu clock), seed 1 | 4,500 of its class; " \
           "500 more held out for validation, never trained on | yes |" in card
    assert meta_license(export_dir) == "unknown" and "The licence of these images is unknown" in card


def test_publish_can_give_the_export_a_licence_and_keeps_its_figures(export_dir, hub):
    per_class = dict.fromkeys(CIFAR10.names, 0.5)
    assert update_card(export_dir, scored(per_class, per_class))
    args = ["publish", str(export_dir), "--repo", "someone/synthetic-cifar"]
    assert_user_error(CliRunner().invoke(app, [*args, "--license", "no such licence"]), "--license must be")
    assert hub.calls == [] and meta_license(export_dir) == "unknown"
    assert CliRunner().invoke(app, [*args, "--license", "MIT"]).exit_code == 0
    card = (export_dir / "README.md").read_text()
    assert meta_license(export_dir) == "mit" and "published as `mit`" in card and "is unknown" not in card
    assert "| CAS / baseline | 0.50 |" in card and card.count("## License") == 1
    assert json.loads((export_dir / "manifest.json").read_text())["license"] == "mit"
    assert CliRunner().invoke(app, [*args, "--license", "unknown"]).exit_code == 0
    assert meta_license(export_dir) == "unknown"
