"""The real CIFAR-10 loader and `cifar-synth data`, on tiny generated data and a local HTTP server."""

import hashlib
import io
import json
import pickle
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error
from PIL import Image
from typer.testing import CliRunner

import cifar_synth.data as data_module
from cifar_synth.classes import CIFAR10
from cifar_synth.cli import app
from cifar_synth.data import DATASETS as OFFICIAL, fetch_official, open_real_data
from cifar_synth.errors import UserError
from cifar_synth.files import current_umask

PER_CLASS = 2
DATASETS = Path("datasets") / "cifar10"
ARCHIVE_NAME = OFFICIAL["cifar10"].archive_name


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Default `datasets/` lands in tmp, and the caller's environment cannot point elsewhere."""
    monkeypatch.chdir(tmp_path)
    for variable in ("CIFAR_SYNTH_DATA", "CIFAR_SYNTH_URL", "CIFAR_SYNTH_SHA256"):
        monkeypatch.delenv(variable, raising=False)


# --- tiny data -------------------------------------------------------------------------------------------------------

def random_images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch in the official format: channel-major 3072-byte rows, pickled at a Python-2-compatible protocol."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"tiny", b"labels": labels.tolist(), b"data": rows,
             b"filenames": [b"img.png"] * len(labels)}
    return pickle.dumps(batch, protocol=2)


def official_files() -> tuple[dict[str, bytes], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Five train batches and a test batch of one shuffled image per class each, and what loading them must give."""
    files, expected = {}, {"train": ([], []), "test": ([], [])}
    for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        images = random_images(len(CIFAR10.names), seed)
        labels = np.random.default_rng(seed).permutation(len(CIFAR10.names))
        files[name] = batch_bytes(images, labels)
        split = expected["test" if name == "test_batch" else "train"]
        split[0].append(images)
        split[1].append(labels)
    files["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in CIFAR10.names]}, protocol=2)
    return files, {split: (np.concatenate(i), np.concatenate(l)) for split, (i, l) in expected.items()}


def encode(image: np.ndarray, suffix: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG" if suffix == ".png" else "JPEG")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def tree_files(suffix: str = ".png") -> tuple[dict[str, bytes], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A class-folder tree with PER_CLASS images per class and split, and what loading it must give (label order)."""
    files, expected = {}, {}
    for seed, split in enumerate(("train", "test")):
        labels = np.repeat(np.arange(len(CIFAR10.names)), PER_CLASS)
        blobs = [encode(image, suffix) for image in random_images(len(labels), seed)]
        for i, (blob, label) in enumerate(zip(blobs, labels)):
            files[f"{split}/{CIFAR10.names[label]}/{i % PER_CLASS:03d}{suffix}"] = blob
        expected[split] = (np.stack([decode(blob) for blob in blobs]), labels)
    return files, expected


def store(files: dict[str, bytes], path: Path, top: str = "") -> Path:
    """Write `files` (under folder `top`) as a folder, or a .zip / .tar.gz / .tgz archive, chosen by `path`'s name."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in files.items():
                archive.writestr(top + name, data)
    elif path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(top + name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    else:
        for name, data in files.items():
            (path / top / name).parent.mkdir(parents=True, exist_ok=True)
            (path / top / name).write_bytes(data)
    return path


def official_archive(path: Path) -> Path:
    return store(official_files()[0], path, top="cifar-10-batches-py/")


def assert_loads(data, expected) -> None:
    for split, (images, labels) in expected.items():
        loaded = data.load(split)
        np.testing.assert_array_equal(loaded.labels, labels)
        np.testing.assert_array_equal(loaded.images, images)
        assert loaded.images.dtype == np.uint8 and loaded.labels.dtype == np.int64
    some = data.load("train", classes=[7, 2])
    keep = np.isin(expected["train"][1], [2, 7])
    assert sorted(set(some.labels.tolist())) == [2, 7]
    np.testing.assert_array_equal(some.of_class(7), expected["train"][0][expected["train"][1] == 7])
    assert len(some) == keep.sum()


def flat(text: str) -> str:
    """Rich wraps long lines (even inside paths) at the terminal width; compare without any whitespace."""
    return "".join(text.split())


# --- reading ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["archive", "batches folder", "parent folder"])
def test_official_python_batches(tmp_path, layout):
    files, expected = official_files()
    if layout == "archive":
        path = official_archive(tmp_path / ARCHIVE_NAME)
    else:
        folder = store(files, tmp_path / "parent", top="cifar-10-batches-py/")
        path = folder if layout == "parent folder" else folder / "cifar-10-batches-py"
    data = open_real_data(path)
    assert "python batches" in data.kind
    assert_loads(data, expected)
    summary = data.describe()
    assert summary["counts"]["train"] == dict.fromkeys(CIFAR10.names, 5)
    assert summary["counts"]["test"] == dict.fromkeys(CIFAR10.names, 1)
    if layout == "archive":
        assert summary["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["checksum_status"].startswith("unverified")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("name, top", [("tree", ""), ("tree.tar.gz", "cifar10/"), ("tree.zip", ""),
                                       ("tree.tgz", "")])
def test_class_folder_tree(tmp_path, suffix, name, top):
    files, expected = tree_files(suffix)
    path = store(files, tmp_path / name, top) / top if name == "tree" else store(files, tmp_path / name, top)
    data = open_real_data(path)
    assert "class-folder" in data.kind
    assert_loads(data, expected)
    summary = data.describe()
    assert summary["counts"] == {split: dict.fromkeys(CIFAR10.names, PER_CLASS) for split in ("train", "test")}
    json.dumps(summary)


def test_png_tree_round_trips_exactly(tmp_path):
    images = random_images(1, 0)
    files, _ = tree_files()
    files["train/dog/000.png"] = encode(images[0], ".png")
    loaded = open_real_data(store(files, tmp_path / "tree")).load("train", classes=[5])
    np.testing.assert_array_equal(loaded.images[0], images[0])


def test_folder_hash_depends_on_content_not_on_stray_files(tmp_path):
    files, _ = tree_files()
    first = open_real_data(store(files, tmp_path / "a")).sha256
    (tmp_path / "a" / "train" / "dog" / ".DS_Store").write_bytes(b"junk")
    assert open_real_data(tmp_path / "a").sha256 == first
    files["train/dog/001.png"] = files["train/dog/000.png"]
    assert open_real_data(store(files, tmp_path / "b")).sha256 != first


def test_env_and_default_folder(tmp_path, monkeypatch):
    files, _ = tree_files()
    store(files, DATASETS)  # a tree already in datasets/cifar10/ is used without downloading
    assert open_real_data(download=False).source == str(DATASETS)
    monkeypatch.setenv("CIFAR_SYNTH_DATA", str(official_archive(tmp_path / ARCHIVE_NAME)))
    assert "python batches" in open_real_data().kind


# --- bad input -------------------------------------------------------------------------------------------------------

def _tree_with(tmp_path, change) -> Path:
    files, _ = tree_files()
    change(files)
    return store(files, tmp_path / "tree")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _drop_class(files):
    for name in [n for n in files if n.startswith("train/truck/")]:
        del files[name]


BAD_INPUTS = {
    "missing class folder": (lambda p: _tree_with(p, _drop_class), "train/truck"),
    "unknown class folder": (
        lambda p: _tree_with(p, lambda f: f.update({"train/unicorn/0.png": f["train/dog/000.png"]})), "train/unicorn"),
    "missing split": (
        lambda p: _tree_with(p, lambda f: [f.pop(n) for n in list(f) if n.startswith("test/")]), "tree/test"),
    "corrupt archive": (lambda p: write(p / ARCHIVE_NAME, b"not gzip at all"), ARCHIVE_NAME),
    "truncated archive": (
        lambda p: write(p / "cut.tar.gz", official_archive(p / ARCHIVE_NAME).read_bytes()[:3000]), "cut.tar.gz"),
    "corrupt pickle": (
        lambda p: store({**official_files()[0], "data_batch_2": b"\x80\x02garbage"}, p / "batches"), "data_batch_2"),
    "nonexistent path": (lambda p: p / "nowhere", "nowhere"),
    "empty folder": (lambda p: p, "holds no CIFAR-10"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_a_user_error_naming_the_file(tmp_path, case):
    make, named = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        data = open_real_data(path)
        data.describe()
        data.load("train")
    assert_user_error(CliRunner().invoke(app, ["data", "info", "--data", str(path)]), named)


@pytest.mark.parametrize("size, mode, message", [((31, 32), "RGB", "31×32 RGB"), ((32, 32), "L", "32×32 L"),
                                                 ((32, 32), "RGBA", "32×32 RGBA")])
def test_image_that_is_not_32x32_rgb_is_named(tmp_path, size, mode, message):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    path = _tree_with(tmp_path, lambda files: files.update({"train/dog/000.png": buffer.getvalue()}))
    with pytest.raises(UserError, match=f"train/dog/000.png is a {message} image"):
        open_real_data(path).load("train", classes=[5])
    open_real_data(path).load("train", classes=[4])  # other classes are not decoded, so they still load


def test_unreadable_image_is_named(tmp_path):
    path = _tree_with(tmp_path, lambda files: files.update({"test/cat/000.png": b"\x89PNG broken"}))
    with pytest.raises(UserError, match="test/cat/000.png is not a readable"):
        open_real_data(path).load("test")


# --- downloading -----------------------------------------------------------------------------------------------------

@pytest.fixture
def server():
    """A local HTTP server: set `routes[path] = (body, declared Content-Length)`; yields (routes, base URL)."""
    routes: dict[str, tuple[bytes, int]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, declared = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after this, even if short

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield routes, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_archive(tmp_path) -> bytes:
    return official_archive(tmp_path / "served.tar.gz").read_bytes()


def serve(monkeypatch, server, body: bytes, declared: int | None = None, sha256: str | None = None) -> None:
    routes, base = server
    routes["/cifar.tar.gz"] = (body, len(body) if declared is None else declared)
    monkeypatch.setenv("CIFAR_SYNTH_URL", base + "/cifar.tar.gz")
    if sha256:
        monkeypatch.setenv("CIFAR_SYNTH_SHA256", sha256)


def test_download_verifies_and_keeps_the_archive(monkeypatch, server, tiny_archive):
    serve(monkeypatch, server, tiny_archive, sha256=hashlib.sha256(tiny_archive).hexdigest())
    data = open_real_data()
    assert [p.name for p in DATASETS.iterdir()] == [ARCHIVE_NAME]
    assert (DATASETS / ARCHIVE_NAME).read_bytes() == tiny_archive
    assert (DATASETS / ARCHIVE_NAME).stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert len(data.load("test")) == len(CIFAR10.names)
    result = CliRunner().invoke(app, ["data", "fetch"])
    assert result.exit_code == 0 and "already present and verified" in result.output


def test_fetch_into_dest(monkeypatch, server, tiny_archive, tmp_path):
    serve(monkeypatch, server, tiny_archive, sha256=hashlib.sha256(tiny_archive).hexdigest())
    result = CliRunner().invoke(app, ["data", "fetch", "--dest", "elsewhere"])
    assert result.exit_code == 0 and "downloaded and verified" in result.output
    assert (tmp_path / "elsewhere" / ARCHIVE_NAME).read_bytes() == tiny_archive


def test_overridden_url_still_requires_the_official_checksum(monkeypatch, server, tiny_archive):
    serve(monkeypatch, server, tiny_archive)
    with pytest.raises(UserError, match="expected 6d958be0"):
        open_real_data()
    assert list(DATASETS.iterdir()) == []


def test_interrupted_download_leaves_no_file(monkeypatch, server, tiny_archive):
    serve(monkeypatch, server, tiny_archive[:1000], declared=len(tiny_archive),
          sha256=hashlib.sha256(tiny_archive).hexdigest())
    with pytest.raises(UserError, match="download"):
        fetch_official()
    assert list(DATASETS.iterdir()) == []


def test_ctrl_c_during_download_leaves_no_file(monkeypatch):
    def interrupted(url, file, *_):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(data_module, "_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_official()
    assert list(DATASETS.iterdir()) == []


def test_offline_without_local_copy_says_how_to_point_at_one(monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CIFAR_SYNTH_URL", f"http://127.0.0.1:{port}/cifar.tar.gz")
    with pytest.raises(UserError, match="could not download CIFAR-10 .*refused.*CIFAR_SYNTH_DATA"):
        open_real_data()
    assert_user_error(CliRunner().invoke(app, ["data", "info"]), "--data")
    assert not any(DATASETS.iterdir())


# --- data info -------------------------------------------------------------------------------------------------------

def test_data_info_table_and_json(tmp_path):
    path = official_archive(tmp_path / ARCHIVE_NAME)
    result = CliRunner().invoke(app, ["data", "info", "--data", str(path)])
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() in flat(result.output)
    assert "airplane" in result.output and "total" in result.output and "unverified" in result.output
    result = CliRunner().invoke(app, ["data", "info", "--data", str(path), "--json"])
    summary = json.loads(result.stdout)
    assert summary["source"] == str(path) and summary["counts"]["train"]["truck"] == 5
