"""Datasets beyond CIFAR-10: CIFAR-100 from its official pickles, and a class-folder tree of any classes, through
train, export, evaluate and show; and the errors of mixing datasets or naming classes badly."""

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ODD, PER_CLASS, TINY_GAN_CLI, assert_user_error, random_images, save_generator, write_odd_tree
from PIL import Image
from typer.testing import CliRunner

from cifar_synth.classes import CIFAR10
from cifar_synth.cli import app
from cifar_synth.data import open_real_data
from cifar_synth.errors import UserError
from cifar_synth.synthetic import load_synthetic

FINE = ("apple", "aquarium_fish", "bear", "maple_tree")  # a CIFAR-100 of four fine classes, in two coarse ones
COARSE = ("fruit_and_vegetables", "fish")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


# --- CIFAR-100 -------------------------------------------------------------------------------------------------------

def cifar100_archive(path: Path, per_class: int = 3) -> tuple[Path, dict]:
    """`cifar-100-python.tar.gz` in the official layout (train, test and meta pickles, fine and coarse labels) of
    random images; returns it and, per split, the (images, fine labels) loading must give."""
    expected, files = {}, {}
    for seed, split in enumerate(("train", "test")):
        fine = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(FINE)), per_class))
        images = random_images(len(fine), seed)
        files[split] = pickle.dumps({b"filenames": [b"x.png"] * len(fine), b"batch_label": split.encode(),
                                     b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 2).tolist(),
                                     b"data": images.transpose(0, 3, 1, 2).reshape(len(fine), 3072)}, protocol=2)
        expected[split] = (images, fine)
    files["meta"] = pickle.dumps({b"fine_label_names": [name.encode() for name in FINE],
                                  b"coarse_label_names": [name.encode() for name in COARSE]}, protocol=2)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path, expected


def test_cifar100_archive_reads_its_fine_labels_as_the_classes(tmp_path):
    path, expected = cifar100_archive(tmp_path / "cifar-100-python.tar.gz")
    data = open_real_data(path, dataset="cifar100")
    assert data.classes.dataset == "CIFAR-100" and data.classes.names == FINE
    assert "CIFAR-100 python batches" in data.kind
    for split, (images, labels) in expected.items():
        loaded = data.load(split)
        np.testing.assert_array_equal(loaded.images, images)
        np.testing.assert_array_equal(loaded.labels, labels)
        assert loaded.classes == data.classes
    images, labels = expected["train"]
    np.testing.assert_array_equal(data.load("train", classes=[2]).images, images[labels == 2])
    summary = json.loads(invoke("data", "info", "--data", path, "--json").stdout)
    assert summary["dataset"] == "CIFAR-100" and summary["counts"]["test"] == dict.fromkeys(FINE, 3)
    assert summary["checksum_status"].startswith("unverified")


def test_cifar100_is_downloaded_like_cifar10(tmp_path, monkeypatch):
    """Without --data, --dataset cifar100 reads datasets/cifar100/, fetching the archive (a local server here)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = cifar100_archive(tmp_path / "served.tar.gz")[0].read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIFAR_SYNTH_URL", f"http://127.0.0.1:{server.server_address[1]}/c.tar.gz")
    monkeypatch.delenv("CIFAR_SYNTH_SHA256", raising=False)
    try:
        # The published checksum is CIFAR-100's md5: this tiny archive fails it, and nothing is kept.
        assert_user_error(invoke("data", "fetch", "--dataset", "cifar100"), "expected eb9058c3a382ffc7106e4002c42a8d85")
        assert not any((tmp_path / "datasets" / "cifar100").iterdir())
        monkeypatch.setenv("CIFAR_SYNTH_SHA256", hashlib.sha256(body).hexdigest())
        data = open_real_data(dataset="cifar100")
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "datasets" / "cifar100" / "cifar-100-python.tar.gz").read_bytes() == body
    assert data.classes.names == FINE


def test_dataset_names_what_data_must_hold(tmp_path, real_tree):
    assert_user_error(invoke("data", "info", "--data", real_tree, "--dataset", "cifar100"),
                      "holds CIFAR-10, not CIFAR-100 (--dataset cifar100)")
    assert_user_error(invoke("data", "info", "--dataset", "imagenet"), "unknown --dataset 'imagenet'")


# --- a class-folder tree of odd class names -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory) -> Path:
    return write_odd_tree(tmp_path_factory.mktemp("odd") / "critters")


@pytest.fixture(scope="module")
def odd_runs(odd_tree, tmp_path_factory) -> Path:
    """All three classes trained a few steps from a shared start on all three."""
    runs = tmp_path_factory.mktemp("odd-runs") / "runs"
    result = invoke("train", "--class", "all", "--steps", "2", "--shared-steps", "2", "--data", odd_tree,
                    "--runs", runs, *TINY_GAN_CLI)
    assert result.exit_code == 0, result.output
    return runs


def test_a_tree_s_classes_are_its_folders_sorted(odd_tree):
    data = open_real_data(odd_tree)
    assert data.classes.names == ODD and data.classes.dataset == "critters"
    train = data.load("train", classes=[2])
    assert set(train.labels.tolist()) == {2} and len(train) == PER_CLASS
    summary = json.loads(invoke("data", "info", "--data", odd_tree, "--json").stdout)
    assert summary["counts"]["train"] == dict.fromkeys(ODD, PER_CLASS) and summary["dataset"] == "critters"


def test_odd_classes_train_into_their_own_runs_folder(odd_runs, odd_tree):
    assert json.loads((odd_runs / "dataset.json").read_text()) == {"dataset": "critters", "class_names": list(ODD)}
    for name in ("shared", *ODD):
        assert (odd_runs / name / "generator.keras").is_file()
    assert json.loads((odd_runs / "Ñandú" / "config.json").read_text())["class_index"] == 2
    # --class is case-insensitive, whatever the case of the folder
    result = invoke("train", "--class", "sea lion", "--class", "ñandú", "--steps", "2", "--data", odd_tree,
                    "--runs", odd_runs, *TINY_GAN_CLI)
    assert result.exit_code == 0, result.output
    assert_user_error(invoke("train", "--class", "walrus", "--data", odd_tree, "--runs", odd_runs, *TINY_GAN_CLI),
                      "unknown critters class 'walrus'; valid names: Sea Lion, ZEBRA, Ñandú, or 'all', or 'shared'")


def test_odd_classes_export_to_every_format_and_read_back(odd_runs, tmp_path):
    out = tmp_path / "export"
    result = invoke("export", "--runs", odd_runs, "--out", out, "--count", "12", "--format", "parquet",
                    "--format", "csv", "--format", "images")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == {"dataset": "critters", "class_names": list(ODD)}
    assert [entry["name"] for entry in manifest["classes"]] == list(ODD)
    shard = next((out / "data").glob("*.parquet"))
    features = json.loads(pq.read_schema(shard).metadata[b"huggingface"])["info"]["features"]
    assert features["label"]["names"] == list(ODD)
    table = pd.read_csv(out / "csv" / "train.csv", usecols=["label", "label_name"])
    assert dict(zip(table["label"], table["label_name"])) == dict(enumerate(ODD))
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(ODD)
    data = load_synthetic(out)
    assert data.classes.names == ODD and np.bincount(data.labels).tolist() == [12, 12, 12]
    assert load_synthetic(shard).classes.names == ODD  # a shard alone: its ClassLabel names the classes
    card = (out / "README.md").read_text()
    assert "Synthetic critters" in card and "of all three classes together" in card and "- cifar10" not in card
    assert "'0': Sea Lion" in card and "'2': Ñandú" in card
    assert "whose origin and terms cifar-synth does not know" in card


def test_odd_classes_evaluate_against_their_tree(odd_runs, odd_tree, tmp_path):
    export = tmp_path / "export"
    assert invoke("export", "--runs", odd_runs, "--out", export, "--count", "16").exit_code == 0
    result = invoke("evaluate", "--synthetic", export, "--data", odd_tree, "--budget", "quick", "--epochs", "1",
                    "--judges", "cnn", "--no-inception-fid", "--cache-dir", tmp_path / "cache", "--out",
                    tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in ODD)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert list(report["classifiers"]["synthetic"]["per_class_accuracy"]) == list(ODD)
    assert np.array(report["classifiers"]["synthetic"]["confusion"]).shape == (3, 3)
    assert "| Ñandú |" in (tmp_path / "report" / "report.md").read_text()
    assert "real critters test images" in (export / "README.md").read_text()
    entry = Path(report["classifiers"]["real"]["cache_entry"])
    assert json.loads((entry / "metrics.json").read_text())["key"]["classes"]["class_names"] == list(ODD)


def test_odd_classes_show_a_subset_or_all(odd_runs, tmp_path):
    result = invoke("show", odd_runs, "--class", "zebra", "--class", "SEA LION", "--count", "3", "--out",
                    tmp_path / "two.png")
    assert result.exit_code == 0, result.output
    assert "2 classes" in " ".join(result.output.split())
    assert Image.open(tmp_path / "two.png").height == 2 * (64 + 2) + 2  # two rows of 32×32 images shown at 2×
    export = tmp_path / "export"
    assert invoke("export", "--runs", odd_runs, "--out", export, "--count", "4").exit_code == 0
    result = invoke("show", export, "--out", tmp_path / "all.png")
    assert result.exit_code == 0 and "3 classes" in " ".join(result.output.split())
    assert_user_error(invoke("show", odd_runs, "--class", "dog", "--out", tmp_path / "x.png"),
                      "unknown critters class 'dog'")


def test_odd_classes_select_on_their_validation_slice(real_tree, tmp_path):
    tree = write_odd_tree(tmp_path / "critters", per_class=24)  # a validation slice of 2 per class
    runs = tmp_path / "runs"
    result = invoke("train", "--class", "ñandú", "--steps", "2", "--snapshot-every", "1", "--init-from", "none",
                    "--data", tree, "--runs", runs, *TINY_GAN_CLI)
    assert result.exit_code == 0, result.output
    result = invoke("select", "--runs", runs, "--data", tree, "--samples", "8", "--latent-std", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((runs / "Ñandú" / "selection.json").read_text())["chosen"]["steps"] in (1, 2)
    assert_user_error(invoke("select", "--runs", runs, "--data", real_tree, "--quiet"),
                      "are of the 3 classes of critters, the real data")


# --- errors --------------------------------------------------------------------------------------------------------

def test_a_class_in_one_split_only_is_one_error(tmp_path):
    root = write_odd_tree(tmp_path / "tree")
    write_odd_tree(root, names=("Walrus",), splits=("train",))
    assert_user_error(invoke("data", "info", "--data", root), f"missing class folder {root / 'test' / 'Walrus'}")
    with pytest.raises(UserError, match="train and test need the same class folders"):
        open_real_data(root).load("train")


def test_an_image_of_another_size_is_one_clear_line(tmp_path):
    root = write_odd_tree(tmp_path / "tree", per_class=2)
    Image.new("RGB", (28, 28)).save(root / "train" / "ZEBRA" / "big.png")
    result = invoke("train", "--class", "zebra", "--steps", "1", "--data", root, "--runs", tmp_path / "runs",
                    "--init-from", "none", *TINY_GAN_CLI)
    assert_user_error(result, "ZEBRA/big.png is a 28×28 RGB image; images must be 32×32 RGB")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("names, message", [
    (("cat", "Shared"), "class name 'Shared' is reserved"),
    (("all", "dog"), "class name 'all' is reserved"),
    (("Cat", "cat"), "class names 'Cat' and 'cat' differ only by case"),
    (("lonely",), "a dataset needs at least two classes"),
])
def test_class_names_that_cannot_be_run_directories_are_refused(tmp_path, names, message):
    root = write_odd_tree(tmp_path / "tree", names=names, per_class=1)
    if len({name.casefold() for name in names}) < len(names) and not (root / "train" / names[1]).is_dir():
        pytest.skip("this file system ignores case: the two folders are one")
    assert_user_error(invoke("data", "info", "--data", root), message)


def test_one_runs_folder_holds_one_dataset(odd_tree, real_tree, tmp_path):
    cifar_runs = tmp_path / "cifar"
    save_generator(cifar_runs, "dog")  # a CIFAR-10 run (no dataset.json, as runs before it)
    result = invoke("train", "--class", "zebra", "--steps", "1", "--data", odd_tree, "--runs", cifar_runs,
                    "--init-from", "none", *TINY_GAN_CLI)
    assert_user_error(result, f"{cifar_runs} holds runs of CIFAR-10 (10 classes), not of critters (3 classes)")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "dataset.json").write_text(json.dumps({"dataset": "critters", "class_names": list(ODD)}))
    result = invoke("train", "--class", "dog", "--steps", "1", "--data", real_tree, "--runs", odd,
                    "--init-from", "none", *TINY_GAN_CLI)
    assert_user_error(result, f"{odd} holds runs of critters (3 classes), not of CIFAR-10 (10 classes)")
    assert not (odd / "dog").exists()


def test_evaluate_refuses_an_export_of_other_classes(odd_runs, real_tree, tmp_path):
    export = tmp_path / "export"
    assert invoke("export", "--runs", odd_runs, "--out", export, "--count", "4").exit_code == 0
    result = invoke("evaluate", "--synthetic", export, "--data", real_tree, "--budget", "quick", "--epochs", "1",
                    "--no-inception-fid", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "report")
    assert_user_error(result, "is labelled with the 3 classes of critters, the real data")
    assert not (tmp_path / "report").exists()


def test_cifar10_exports_and_runs_without_records_stay_cifar10(runs, tmp_path):
    assert not (runs / "dataset.json").exists()
    out = tmp_path / "export"
    assert invoke("export", "--runs", runs, "--out", out, "--count", "2", "--class", "dog").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == CIFAR10.to_record()
    del manifest["dataset"]  # an export from before manifests named their classes
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert load_synthetic(out).classes == CIFAR10


def test_a_report_of_many_classes_names_the_lowest_and_highest(tmp_path):
    """At 100 classes the terminal shows the 5 lowest and 5 highest; report.md names them and holds every class."""
    from rich.console import Console

    from cifar_synth.cli.evaluate import print_summary
    from cifar_synth.report import (ClassifierResult, Diversity, FeatureMetrics, Headline, Recognizability,
                                    Report)

    names = [f"class {index:03d}" for index in range(100)]
    accuracy = {name: index / 100 for index, name in enumerate(names)}
    confusion = np.diag(np.full(100, 4)).tolist()
    result = ClassifierResult(accuracy=0.5, per_class_accuracy=accuracy, confusion=confusion, train_images=400,
                              train_seconds=1.0)
    report = Report(created="2026-12-03T06:00:00+00:00", headline=Headline(cas=0.5, baseline_accuracy=0.6,
                                                                         cas_ratio=0.83, cas_top5=0.75,
                                                                         baseline_top5=0.875),
                    baseline_cached=False, train_images_per_class=4, synthetic={"path": "x", "images": 400,
                                                                                "content_sha256": "0"},
                    real_data={"source": "y", "sha256": "1"}, seed=0,
                    config={"budget_name": "quick", "widths": [1], "epochs": 1},
                    classifiers={"real": result, "synthetic": result},
                    recognizability=Recognizability(accuracy=0.5, per_class_accuracy=accuracy, confusion=confusion),
                    feature_metrics=FeatureMetrics(note="", features="", real_images=1, synthetic_images=1,
                                                   frechet_distance={"overall": 1.0,
                                                                     "per_class": dict.fromkeys(names, 1.0)},
                                                   kid={"overall": None, "per_class": dict.fromkeys(names)}),
                    inception_fid={"skipped": "no"},
                    diversity=Diversity(description="", per_class=dict.fromkeys(names)),
                    warnings=[], versions={}, timings={})
    assert report.ranked_classes() == names[:5] + names[-5:]
    terminal = io.StringIO()
    print_summary(Console(file=terminal, width=200), report, tmp_path)
    shown = [name for name in names if f"{name} " in terminal.getvalue()]
    assert shown == names[:5] + names[-5:] and "of 100 classes" in terminal.getvalue()
    assert "top-5 75.0% against 87.5%" in terminal.getvalue()
    report.save(tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| CAS top-5 | 75.0% |" in markdown and "| baseline top-5 | 87.5% |" in markdown
    assert all(f"| {name} |" in markdown for name in names)
    assert "the lowest are class 000 0.0%" in markdown and "the highest class 095 95.0%" in markdown
    assert Image.open(tmp_path / "confusion_synthetic.png").size[0] > 1000
