"""`cifar-synth export` and `load_synthetic`, with tiny Dense generators saved as runs/<class>/generator.keras.

The filtering tests pair generators whose images' brightness follows the first latent with a hand-made classifier
that judges by mean brightness, so which candidates it accepts can be computed independently.
"""

import io
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import LATENT_DIM, assert_user_error, leftovers, save_generator, visible
from conftest import run_export as export

from cifar_synth import exporter, sampling
from cifar_synth.classes import CIFAR10
from cifar_synth.classifier import make_predictor
from cifar_synth.cli import app
from cifar_synth.filtering import EVALUATOR_CACHE
from cifar_synth.errors import UserError
from cifar_synth.files import sha256_file
from cifar_synth.formats import csv as csv_format
from cifar_synth.formats import parquet as parquet_format
from cifar_synth.formats.csv import COLUMNS as CSV_COLUMNS
from cifar_synth.formats.csv import PIXEL_COLUMNS
from cifar_synth.formats.images import encode_png
from cifar_synth.images import to_uint8
from cifar_synth.synthetic import load_synthetic

COUNT = 20


def test_every_format_round_trips_to_the_generators_images(runs, tmp_path):
    out = tmp_path / "export"
    result = export(runs, out, "--class", "dog", "--class", "airplane",
                    "--format", "parquet", "--format", "csv", "--format", "images", "--batch-size", "7")
    assert result.exit_code == 0, result.output
    assert "parquet (all classes)" in result.output

    # The documented latent recipe reproduces every image.
    expected = []
    for class_name in ("airplane", "dog"):
        generator = keras.models.load_model(runs / class_name / "generator.keras", compile=False)
        latents = np.random.default_rng([0, CIFAR10.label(class_name)]).standard_normal(
            (COUNT, LATENT_DIM), dtype=np.float32)
        expected.append(to_uint8(generator(latents, training=False)))
    expected = np.concatenate(expected)
    labels = np.repeat(np.array([0, 5], np.int64), COUNT)

    for source in (out, out / "data", out / "data/train-00000-of-00001.parquet", out / "csv/train.csv",
                   out / "images"):
        data = load_synthetic(source)
        assert data.labels.dtype == np.int64
        np.testing.assert_array_equal(data.labels, labels)
        np.testing.assert_array_equal(data.images, expected)

    assert sorted(p.name for p in (out / "images/dog").iterdir())[:2] == ["00000.png", "00001.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["formats"] == ["parquet", "csv", "images"]
    assert [c["name"] for c in manifest["classes"]] == ["airplane", "dog"]
    assert manifest["classes"][1]["run_config"]["class_name"] == "dog"
    assert manifest["format_version"] == 2 and manifest["versions"]["cifar-synth"]
    csv_entry = next(entry for entry in manifest["files"] if entry["format"] == "csv")
    assert csv_entry["bytes"] == (out / "csv/train.csv").stat().st_size
    assert leftovers(tmp_path) == []


def test_parquet_is_sharded_and_readable_by_pandas_pyarrow_and_datasets(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_format, "ROWS_PER_SHARD", 25)
    monkeypatch.setattr(parquet_format, "ROW_GROUP_ROWS", 8)
    out = tmp_path / "export"
    assert export(runs, out, "--class", "dog", "--class", "truck").exit_code == 0
    shards = sorted((out / "data").iterdir())
    assert [p.name for p in shards] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]

    schema = pq.read_schema(shards[0])
    assert schema.field("img").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert schema.field("label").type == pa.int64()
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features == {"img": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": list(CIFAR10.names)}}
    assert pq.ParquetFile(shards[0]).metadata.num_row_groups == 3  # 8 + 8 + 4 rows

    frame = pd.read_parquet(out / "data")
    assert frame["label"].tolist() == [5] * COUNT + [9] * COUNT
    assert frame["img"][0]["path"] == "dog/00000.png"
    assert Image.open(io.BytesIO(frame["img"][0]["bytes"])).size == (32, 32)


def test_hugging_face_datasets_reads_the_parquet_as_image_and_class_label(runs, tmp_path):
    datasets = pytest.importorskip("datasets")  # optional: not a dependency of cifar-synth
    if not hasattr(datasets, "load_dataset"):  # the repository's own datasets/ folder, not Hugging Face's
        pytest.skip("Hugging Face datasets is not installed")
    out = tmp_path / "export"
    assert export(runs, out, "--class", "dog").exit_code == 0
    dataset = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert dataset.features["label"].int2str(5) == "dog"
    assert dataset[0]["label"] == 5
    assert dataset[0]["img"].size == (32, 32)


def test_same_seed_gives_byte_identical_files_and_latents_ignore_batch_size(runs, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert export(runs, out, "--format", "parquet", "--format", "csv", "--format", "images",
                      "--seed", "3").exit_code == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for file in files:
        if file.name not in ("manifest.json", "README.md"):  # these two name the folder
            assert (first / file).read_bytes() == (second / file).read_bytes(), file
    assert (first / "README.md").read_text().replace(": first", ": second") == (second / "README.md").read_text()
    manifests = [json.loads((out / "manifest.json").read_text()) for out in (first, second)]
    assert [manifest.pop("name") for manifest in manifests] == ["first", "second"]
    assert manifests[0] == manifests[1]

    expected = np.random.default_rng([3, 9]).standard_normal((COUNT, LATENT_DIM), dtype=np.float32)
    for batch_size in (1, 7, COUNT, 64):
        batches = list(sampling.latent_batches(3, 9, COUNT, LATENT_DIM, batch_size))
        assert [len(latents) for latents in batches[:1]] == [min(batch_size, COUNT)]
        np.testing.assert_array_equal(np.concatenate(batches), expected)


def test_default_classes_output_and_overwrite(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["export", "--runs", str(runs), "--count", "3", "--format", "csv"]
    assert CliRunner().invoke(app, args).exit_code == 0
    out = tmp_path / "datasets/synthetic" / f"{runs.name}-seed0"
    assert np.unique(load_synthetic(out).labels).tolist() == [0, 5, 9]

    assert_user_error(CliRunner().invoke(app, args), "already exists; pass --overwrite")
    result = CliRunner().invoke(app, [*args, "--seed", "1", "--name", f"{runs.name}-seed0", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert visible(out.parent) == [out.name] and leftovers(out.parent) == []  # no staging or set-aside folders

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert_user_error(CliRunner().invoke(app, [*args, "--out", str(foreign), "--overwrite"]),
                      "not a cifar-synth export")
    assert (foreign / "keep.txt").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_export_leaves_no_trace(runs, tmp_path, monkeypatch, existing):
    out = tmp_path / "export"
    if existing:
        assert export(runs, out, "--class", "dog").exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []
    original = csv_format.CsvWriter.write

    def interrupt_on_second_batch(self, batch):
        calls.append(batch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(self, batch)

    monkeypatch.setattr(csv_format.CsvWriter, "write", interrupt_on_second_batch)
    result = export(runs, out, "--format", "parquet", "--format", "csv", "--batch-size", "5", "--overwrite")
    assert result.exit_code == 130
    assert "Traceback" not in result.output
    assert visible(tmp_path) == (["export"] if existing else []) and leftovers(tmp_path) == []
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def corrupt_runs(runs: Path) -> str:
    (runs / "cat").mkdir()
    (runs / "cat/generator.keras").write_bytes(b"not a keras file")
    return f"cannot load generator {runs / 'cat/generator.keras'}"


def wrong_shape_runs(runs: Path) -> str:
    save_generator(runs, "cat", shape=(16, 16, 3))
    return f"{runs / 'cat/generator.keras'}: generator output has shape (16, 16, 3), expected (32, 32, 3)"


@pytest.mark.parametrize("case", ["missing class", "no generators", "corrupt generator", "wrong shape",
                                  "unwritable output", "unknown format", "zero count", "classifier without filter",
                                  "unknown filter", "confidence above 1", "missing classifier", "not a classifier"])
def test_errors_exit_1_without_traceback(runs, tmp_path, case):
    out = tmp_path / "export"
    own_runs = tmp_path / "runs"
    own_runs.mkdir()
    (tmp_path / "a-file").write_text("")
    args, message = {
        "missing class": ((runs, out, "--class", "cat"),
                          f"no trained generator for cat: {runs / 'cat/generator.keras'}"),
        "no generators": ((own_runs, out), f"no trained generators in {own_runs}"),
        "corrupt generator": ((own_runs, out), None),
        "wrong shape": ((own_runs, out), None),
        "unwritable output": ((runs, tmp_path / "a-file/export"), f"cannot write {tmp_path / 'a-file'}"),
        "unknown format": ((runs, out, "--format", "tfrecord"),
                           "unknown format 'tfrecord'; valid formats: parquet, images, csv"),
        "zero count": ((runs, out, "--count", "0"), "--count must be at least 1"),
        "classifier without filter": ((runs, out, "--classifier", "clf.keras", "--min-confidence", "0.9"),
                                      "--classifier and --min-confidence need --filter classifier"),
        "unknown filter": ((runs, out, "--filter", "fid"), "unknown filter 'fid'; valid filters: none, classifier"),
        "confidence above 1": ((runs, out, "--filter", "classifier", "--min-confidence", "1.5"),
                               "--min-confidence must be between 0 and 1, got 1.5"),
        "missing classifier": ((runs, out, "--filter", "classifier", "--classifier", str(tmp_path / "no.keras")),
                               f"classifier {tmp_path / 'no.keras'} does not exist"),
        "not a classifier": ((runs, out, "--filter", "classifier", "--classifier", str(runs / "dog/generator.keras")),
                             f"{runs / 'dog/generator.keras'}: expected a classifier like the evaluator's"),
    }[case]
    if case == "corrupt generator":
        message = corrupt_runs(own_runs)
    elif case == "wrong shape":
        message = wrong_shape_runs(own_runs)
    assert_user_error(export(*args), message)
    assert visible(tmp_path) == ["a-file", "runs"] and leftovers(tmp_path) == []  # no output, no staging folder


def test_load_synthetic_reads_other_tools_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9])

    csv = tmp_path / "pixels.csv"  # label only, foreign pixel column names, same layout
    frame = pd.DataFrame(images.reshape(6, -1), columns=[f"p{i}" for i in range(3072)])
    frame.insert(0, "label", labels)
    frame.to_csv(csv, index=False)
    data = load_synthetic(csv)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)

    parquet = tmp_path / "hub" / "train.parquet"  # an `image` column without Hugging Face metadata
    parquet.parent.mkdir()
    pngs = [encode_png(image) for image in images]
    pq.write_table(pa.table({"image": pa.array([{"bytes": p, "path": None} for p in pngs]), "label": labels}), parquet)
    np.testing.assert_array_equal(load_synthetic(parquet.parent).images, images)

    tree = tmp_path / "tree"
    for index, (image, label) in enumerate(zip(images, labels)):
        (tree / CIFAR10.names[label].upper()).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tree / CIFAR10.names[label].upper() / f"{index}.png")
    data = load_synthetic(tree)
    assert data.labels.tolist() == sorted(labels.tolist())


@pytest.mark.parametrize("case, message", [
    ("label out of range", "label 10 is outside 0–9"),
    ("pixel out of range", "bad.csv"),
    ("label name mismatch", "label 1 has label_name 'cat', expected 'automobile'"),
    ("too few columns", "expected a 'label' column and 3072 pixel columns"),
    ("header only", "holds no images"),
    ("wrong image size", "big.png is a 40×30 RGB image; images must be 32×32 RGB"),
    ("unknown folder", "folders misc are not CIFAR-10 classes"),
    ("empty directory", "holds no dataset"),
])
def test_load_synthetic_errors_name_the_problem(tmp_path, case, message):
    row = ["1", "automobile"] + ["0"] * 3072
    lines = {
        "label out of range": [["10", "automobile"] + ["0"] * 3072],
        "pixel out of range": [row[:-1] + ["256"]],
        "label name mismatch": [["1", "cat"] + ["0"] * 3072],
        "too few columns": None,
        "header only": [],
    }
    path = tmp_path / "bad.csv"
    if case == "too few columns":
        path.write_text("label,a,b\n1,2,3\n")
    elif case in lines:
        path.write_text("\n".join(",".join(line) for line in [list(CSV_COLUMNS), *lines[case]]) + "\n")
    else:
        path = tmp_path / "tree"
        (path / "dog").mkdir(parents=True)
        if case == "wrong image size":
            Image.new("RGB", (40, 30)).save(path / "dog/big.png")
        elif case == "unknown folder":
            (path / "misc").mkdir()
        else:
            path = tmp_path / "empty"
            path.mkdir()
    with pytest.raises(UserError) as error:
        load_synthetic(path)
    assert message in str(error.value)


def test_pixel_columns_follow_reshape_order():
    assert PIXEL_COLUMNS[:4] == ("r0c0_r", "r0c0_g", "r0c0_b", "r0c1_r")
    assert PIXEL_COLUMNS[3 * 32] == "r1c0_r" and PIXEL_COLUMNS[-1] == "r31c31_b"
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 1, 0, 2] = 200
    line = csv_format.csv_rows(image, b"5,dog,").decode()
    values = line.rstrip("\n").split(",")
    assert values[:2] == ["5", "dog"] and line.endswith("\n")
    assert values[2 + PIXEL_COLUMNS.index("r1c0_b")] == "200"


# --- filtering --------------------------------------------------------------------------------------------------------

STEEPNESS = 0.05


def save_brightness_classifier(path: Path) -> Path:
    """Built like the evaluator's CNN (pixels 0–255 in, 10 logits out, a 'features' layer): the airplane logit is
    STEEPNESS·(mean pixel − 127.5), the dog logit its negative, the others 0. Truck is never the top class."""
    pixels = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D(name="features")(pixels)
    head = keras.layers.Dense(10)
    model = keras.Model(pixels, head(features))
    kernel, bias = np.zeros((3, 10)), np.zeros(10)
    kernel[:, 0], bias[0] = STEEPNESS / 3, -STEEPNESS * 127.5
    kernel[:, 5], bias[5] = -STEEPNESS / 3, STEEPNESS * 127.5
    head.set_weights([kernel, bias])
    model.save(path)
    return path


def brightness_probabilities(images: np.ndarray) -> np.ndarray:
    logit = STEEPNESS * (images.astype(np.float64).mean((1, 2, 3)) - 127.5)
    logits = np.zeros((len(images), 10))
    logits[:, 0], logits[:, 5] = logit, -logit
    exp = np.exp(logits)
    return exp / exp.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def bright_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Brightness generators for airplane, dog and truck, and the brightness classifier."""
    runs = tmp_path_factory.mktemp("bright-runs")
    for class_name in ("airplane", "dog", "truck"):
        save_generator(runs, class_name, brightness=True)
    return runs, save_brightness_classifier(runs / "classifier.keras")


def expected_filtered(runs: Path, class_name: str, min_confidence: float, batch_size: int, seed: int = 0):
    """The first COUNT accepted images of the class, their candidate indices and the accept mask, computed here."""
    label = CIFAR10.label(class_name)
    generator = keras.models.load_model(runs / class_name / "generator.keras", compile=False)
    latents = np.random.default_rng([seed, label]).standard_normal((6 * COUNT, LATENT_DIM), dtype=np.float32)
    images = np.concatenate([to_uint8(generator(latents[i:i + batch_size], training=False))
                             for i in range(0, len(latents), batch_size)])  # in the export's batches
    probabilities = brightness_probabilities(images)
    mine = probabilities[:, label]
    # No candidate on the edge: at 0.5 and above the top class is implied, so the edge is the threshold; at 0 the tie.
    edge = min_confidence if min_confidence else np.delete(probabilities, label, axis=1).max(1)
    assert np.abs(mine - edge).min() > 1e-4
    indices = np.flatnonzero((probabilities.argmax(1) == label) & (mine >= min_confidence))[:COUNT]
    assert len(indices) == COUNT
    return images[indices], indices


def test_filter_writes_only_accepted_images_and_records_rates(bright_runs, tmp_path):
    runs, classifier = bright_runs
    out = tmp_path / "export"
    result = export(runs, out, "--class", "airplane", "--class", "dog", "--filter", "classifier",
                    "--classifier", str(classifier), "--format", "parquet", "--format", "images", "--batch-size", "16")
    assert result.exit_code == 0, result.output
    assert "accepted %" in result.output and "min confidence 0.5" in result.output

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filter"]["method"] == "classifier" and manifest["filter"]["min_confidence"] == 0.5
    assert manifest["filter"]["classifier"]["sha256"] == sha256_file(classifier)
    assert manifest["latents"] == exporter.FILTERED_LATENT_RECIPE
    data = load_synthetic(out)
    for entry in manifest["classes"]:
        images, indices = expected_filtered(runs, entry["name"], 0.5, batch_size=16)
        np.testing.assert_array_equal(data.of_class(entry["label"]), images)
        np.testing.assert_array_equal(exporter.accepted_candidates(entry), indices)
        candidates = indices[-1] + 1  # the count-th acceptance ends the class
        assert entry["filter"]["candidates"] == candidates and entry["filter"]["accepted"] == COUNT
        assert entry["filter"]["rejection_rate"] == pytest.approx(1 - COUNT / candidates)
        assert 0.2 < entry["filter"]["rejection_rate"] < 0.9  # the filter really rejects
        # Independently of this test's arithmetic: the evaluator's predictor gives every kept image ≥ 0.5.
        probabilities, _ = make_predictor(keras.models.load_model(classifier, compile=False))(images)
        assert probabilities[:, entry["label"]].min() >= 0.5
    assert sorted(p.name for p in (out / "images/dog").iterdir())[-1] == f"{COUNT - 1:05d}.png"


def test_filter_at_zero_confidence_keeps_the_top_class_and_is_deterministic(bright_runs, tmp_path):
    runs, classifier = bright_runs
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        result = export(runs, out, "--class", "dog", "--filter", "classifier", "--classifier", str(classifier),
                        "--min-confidence", "0", "--format", "csv", "--seed", "2", "--batch-size", "16")
        assert result.exit_code == 0, result.output
    assert (first / "csv/train.csv").read_bytes() == (second / "csv/train.csv").read_bytes()
    manifests = [json.loads((out / "manifest.json").read_text()) for out in (first, second)]
    assert [manifest.pop("name") for manifest in manifests] == ["first", "second"]
    assert manifests[0] == manifests[1]

    images, indices = expected_filtered(runs, "dog", 0.0, batch_size=16, seed=2)
    np.testing.assert_array_equal(load_synthetic(first).images, images)
    np.testing.assert_array_equal(exporter.accepted_candidates(manifests[0]["classes"][0]), indices)
    _, at_half = expected_filtered(runs, "dog", 0.5, batch_size=16, seed=2)
    assert indices[-1] < at_half[-1]  # argmax alone rejects fewer


def test_filter_gives_up_on_a_class_it_never_accepts(bright_runs, tmp_path):
    runs, classifier = bright_runs
    result = export(runs, tmp_path / "export", "--class", "airplane", "--class", "truck", "--count", "2",
                    "--filter", "classifier", "--classifier", str(classifier))
    assert_user_error(result, "truck: the classifier accepted only 0 of 100 candidates (0.0%) at "
                              "min confidence 0.5")
    assert visible(tmp_path) == [] and leftovers(tmp_path) == []


def test_filter_takes_the_cached_default_budget_classifier_on_all_training_images(bright_runs, tmp_path, monkeypatch):
    """Issue 38: a quick trial evaluation's classifier, cached last, is never the filter's; the chosen one's budget,
    training images and accuracy are printed with the filter line and recorded in the manifest and the card."""
    from cifar_synth import baseline_cache
    from cifar_synth.classifier import EvaluatorConfig
    from cifar_synth.judge_names import CNN

    bright, classifier = bright_runs
    runs, data_sha256 = tmp_path / "runs", "ab" * 32
    shutil.copytree(bright / "dog", runs / "dog")
    (runs / "dog" / "config.json").write_text(json.dumps({  # 4,500 trained on + 500 held out: 5,000 per class
        "data": {"sha256": data_sha256, "splits": ["train"], "validation": {"fraction": 0.1, "images": 500}},
        "train_images": 4500}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = ["export", "--runs", str(runs), "--class", "dog", "--count", "3", "--format", "csv", "--filter",
            "classifier"]
    assert_user_error(CliRunner().invoke(app, args), "run `cifar-synth evaluate --budget default` on an export")
    cache = tmp_path / "cache/cifar-synth/evaluator"

    def cache_entry(per_class: int, accuracy: float, real_sha256: str = data_sha256, **config) -> Path:
        key = baseline_cache.baseline_key(CNN, real_sha256, 0, per_class,
                                          EvaluatorConfig.budget("default", **config).to_dict(), CIFAR10)
        entry = baseline_cache.entry_dir(cache, CNN, key)
        entry.mkdir(parents=True)
        (entry / "classifier.keras").write_bytes(classifier.read_bytes())
        (entry / "metrics.json").write_text(json.dumps({"key": key, "metrics": {
            "accuracy": accuracy, "train_images": per_class * 10}}))
        return entry / "classifier.keras"

    cache_entry(5000, 0.9, real_sha256="cd" * 32)  # other data: never picked
    assert_user_error(CliRunner().invoke(app, args), "(1 trained on other data): run `cifar-synth evaluate")
    default = cache_entry(5000, 0.88)
    cache_entry(1000, 0.8)  # the default budget on a subset
    quick = cache_entry(200, 0.122, epochs=1)  # a trial evaluation, made last
    assert quick.stat().st_mtime >= default.stat().st_mtime
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = "default budget, 5,000 training images per class (50,000 in all), 88.0% accuracy on the real test split"
    assert "".join(f"Filtering with the evaluator's cached real-trained classifier {default} ({figures}), min "
                   "confidence 0.5".split()) in "".join(result.output.split())  # Rich wraps long lines anywhere
    out = tmp_path / f"datasets/synthetic/{runs.name}-seed0-filter0.5"
    manifest = json.loads((out / "manifest.json").read_text())
    budget = EvaluatorConfig.budget("default")  # its widths and epochs, whatever the default budget is
    # The manifest names no machine: a path outside the runs folder is cut to its name (the output names it whole).
    assert manifest["filter"]["classifier"] | {"sha256": None} == {
        "path": "classifier.keras", "sha256": None, "from_evaluator_cache": True, "trained_on": EVALUATOR_CACHE,
        "baseline": {"budget": "default", "widths": list(budget.widths), "epochs": budget.epochs, "seed": 0,
                     "train_images_per_class": 5000, "train_images": 50000, "real_test_accuracy": 0.88}}
    assert "filter.classifier.path" in manifest["paths"]["outside_it_reduced_to_name"]
    assert figures in (out / "README.md").read_text()

    shutil.rmtree(default.parent)  # what is left: a subset and a trial; said, not silently taken
    result = CliRunner().invoke(app, [*args, "--name", "again"])
    assert_user_error(result, "no classifier of the evaluator's default budget trained on all 5,000 training "
                              "images per class of this real data is cached")
    widths = "-".join(map(str, budget.widths))
    assert f"custom budget (widths {widths}, 1 epoch), 200 training images per class (2,000 in all), 12.2% " \
           "accuracy" in " ".join(result.output.split())

    weak = cache_entry(5000, 0.3)  # the right budget and images, but weak: refused unless named
    assert_user_error(CliRunner().invoke(app, [*args, "--name", "weak"]), "has 30.0% accuracy on the real test "
                      f"split, below the 50% a filter needs to tell one class's images from another's: delete "
                      f"{weak.parent}")
    result = CliRunner().invoke(app, [*args, "--name", "named", "--classifier", str(quick)])
    assert result.exit_code == 0, result.output
    assert "12.2% accuracy on the real test split), min confidence 0.5" in " ".join(result.output.split())


def test_a_classifier_file_counts_as_known_only_when_it_is_a_cache_entry_of_the_same_data(tmp_path):
    from cifar_synth import baseline_cache

    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / baseline_cache.CLASSIFIER_FILE).write_bytes(b"model")
    assert baseline_cache.trained_on(entry / baseline_cache.CLASSIFIER_FILE) is None  # no metrics.json: unknown
    (entry / baseline_cache.METRICS_FILE).write_text(json.dumps({"key": {"real_sha256": "abc"}, "metrics": {}}))
    assert baseline_cache.trained_on(entry / baseline_cache.CLASSIFIER_FILE) == "abc"
    other = tmp_path / "mine.keras"
    other.write_bytes(b"model")
    assert baseline_cache.trained_on(other) is None
