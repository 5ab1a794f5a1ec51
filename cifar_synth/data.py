"""The real data: the one loader train, select and evaluate share.

Reads the official `cifar-10-python.tar.gz` or `cifar-100-python.tar.gz` (without extracting it), their extracted
`cifar-10-batches-py/` or `cifar-100-python/` folders, or a class-folder tree `ROOT/{train,test}/<class>/*.{png,jpg,
jpeg}` of any classes as a folder, .tar.gz/.tgz/.tar or .zip. Every source says its classes (`RealData.classes`):
CIFAR-10's ten, CIFAR-100's 100 fine labels (from its `meta`), or a tree's class folders sorted by name. Imports only
numpy, Pillow and the standard library, so `cifar-synth data info` starts fast.
"""

import hashlib
import http.client
import io
import os
import pickle
import posixpath
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from cifar_synth.classes import CIFAR10, Classes
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, file_digest, sha256_file
from cifar_synth.formats.images import decode_image, is_image_name
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

SPLITS = ("train", "test")
_EXPECTED_TREE = "{train,test}/<class>/*.png|jpg|jpeg"


@dataclass(frozen=True)
class PickledLayout:
    """How an official python version stores a dataset: its pickles per split, the key of their labels, and where
    its class names come from (the fixed CIFAR-10 names, or the `meta` pickle's list under `names_key`)."""

    title: str
    folder: str  # the archive's top folder
    files: dict[str, tuple[str, ...]]
    labels_key: bytes
    meta: str | None = None
    names_key: bytes | None = None

    @property
    def all_files(self) -> tuple[str, ...]:
        return self.files["train"] + self.files["test"]


@dataclass(frozen=True)
class Official:
    """A dataset `--dataset` names: its python version's layout, where it is published and its published checksum."""

    layout: PickledLayout
    url: str
    digest: tuple[str, str]  # (hashlib algorithm, hex digest) as its authors publish it
    default_dir: Path  # relative to the current directory, like runs/

    @property
    def archive_name(self) -> str:
        return posixpath.basename(self.url)

    @property
    def local_copy_hint(self) -> str:
        where = "--data or CIFAR_SYNTH_DATA" if self.layout is CIFAR10_LAYOUT else "--data"
        return (f"To use a local copy instead, point {where} at {self.archive_name}, its extracted "
                f"{self.layout.folder}/ folder, or a class-folder tree ROOT/{{train,test}}/<class>/*.png|jpg (folder, "
                ".tar.gz or .zip).")


CIFAR10_LAYOUT = PickledLayout("CIFAR-10", "cifar-10-batches-py",
                               {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                               b"labels")
CIFAR100_LAYOUT = PickledLayout("CIFAR-100", "cifar-100-python", {"train": ("train",), "test": ("test",)},
                                b"fine_labels", meta="meta", names_key=b"fine_label_names")
DEFAULT_DATASET = "cifar10"
DATASETS = {
    "cifar10": Official(CIFAR10_LAYOUT, "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                        ("sha256", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
                        Path("datasets") / "cifar10"),
    "cifar100": Official(CIFAR100_LAYOUT, "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                         ("md5", "eb9058c3a382ffc7106e4002c42a8d85"), Path("datasets") / "cifar100"),
}
_LAYOUTS = (CIFAR10_LAYOUT, CIFAR100_LAYOUT)
_ARCHIVE_NAMES = " or ".join(known.archive_name for known in DATASETS.values())
_DOWNLOAD_TIMEOUT_SECONDS = 30
_CHUNK_BYTES = 1 << 20


# The validation slice's draw is fixed, not the training seed: every run, seed and command holds out the same images.
VALIDATION_SEED = 0


def split_validation(data: LabeledImages, fraction: float) -> tuple[LabeledImages, LabeledImages]:
    """(training part, validation slice) of a training split: of each class, `fraction` of its images (rounded
    down), drawn by `numpy.random.default_rng([VALIDATION_SEED, label])` from the images in stored order, so the
    slice of a class is the same whichever other classes were loaded with it."""
    held = np.zeros(len(data), dtype=bool)
    for label in np.unique(data.labels):
        indices = np.flatnonzero(data.labels == label)
        order = np.random.default_rng([VALIDATION_SEED, int(label)]).permutation(len(indices))
        held[indices[order[: int(len(indices) * fraction)]]] = True
    return (LabeledImages(data.images[~held], data.labels[~held], data.classes),
            LabeledImages(data.images[held], data.labels[held], data.classes))


def official(dataset: str | None) -> Official:
    """The dataset `--dataset` names (None: CIFAR-10), or a `UserError` listing the names."""
    if dataset is None:
        return DATASETS[DEFAULT_DATASET]
    if dataset.strip().lower() not in DATASETS:
        raise UserError(f"unknown --dataset {dataset!r}; choose {' or '.join(DATASETS)}, or give a class-folder tree "
                        "with --data")
    return DATASETS[dataset.strip().lower()]


def open_real_data(path: str | Path | None = None, *, dataset: str | None = None, download: bool = True) -> "RealData":
    """The real data at `path`; else, without `dataset`, at env CIFAR_SYNTH_DATA; else the official copy of `dataset`
    (default CIFAR-10) in datasets/<dataset>/, downloaded if absent. With both `path` and `dataset`, `path` must
    hold that dataset."""
    wanted = official(dataset)
    path = _given_path(path, dataset)
    if path is not None:
        data = _open(Path(path))
        if dataset is not None and data.classes.dataset != wanted.layout.title:
            raise UserError(f"{path} holds {data.classes.dataset}, not {wanted.layout.title} (--dataset {dataset}); "
                            "leave --dataset out to use it")
        return data
    folder = wanted.default_dir
    data = _find_in_folder(folder) if folder.is_dir() else None
    if data is not None:
        return data
    if not download:
        raise UserError(f"no {wanted.layout.title} found in {folder}/. Run `cifar-synth data fetch"
                        f"{'' if dataset is None else f' --dataset {dataset}'}`. {wanted.local_copy_hint}")
    archive, _ = fetch_official(folder, dataset)
    return _open(archive)


def known_classes(path: str | Path | None = None, dataset: str | None = None) -> Classes | None:
    """The classes of the data `open_real_data(path, dataset=dataset)` opens, when they are known before it is opened
    (the official CIFAR-10's), so that a `--class` typo is one line and not a download first; else None."""
    return CIFAR10 if _given_path(path, dataset) is None and official(dataset).layout is CIFAR10_LAYOUT else None


def _given_path(path: str | Path | None, dataset: str | None) -> str | Path | None:
    """The data's path: `path`; without it and without `dataset`, env CIFAR_SYNTH_DATA; else None (official copy)."""
    if path is None and dataset is None:
        return os.environ.get("CIFAR_SYNTH_DATA") or None
    return path


def fetch_official(dest_dir: str | Path | None = None, dataset: str | None = None) -> tuple[Path, bool]:
    """Make sure `dest_dir` (default datasets/<dataset>/) holds the verified official archive of `dataset` (default
    CIFAR-10); True if it was downloaded now.

    Env CIFAR_SYNTH_URL overrides the address and CIFAR_SYNTH_SHA256 the expected checksum (a mirror or a test server).
    """
    wanted = official(dataset)
    target = Path(wanted.default_dir if dest_dir is None else dest_dir) / wanted.archive_name
    override = os.environ.get("CIFAR_SYNTH_SHA256")
    algorithm, expected = ("sha256", override.strip().lower()) if override else wanted.digest
    if target.is_file() and file_digest(target, algorithm) == expected:
        return target, False
    _download(os.environ.get("CIFAR_SYNTH_URL", wanted.url), target, algorithm, expected, wanted)
    return target, True


class RealData(ABC):
    """One source of real data: `classes` says its classes, `load` decodes a split (optionally only some classes),
    `describe` summarises it."""

    kind: str

    def __init__(self, storage: "_Storage", prefix: str = ""):
        self.storage = storage
        self.prefix = prefix  # folder inside the storage holding the data, "" or ending in "/"

    @property
    def source(self) -> str:
        return str(self.storage.path)

    @cached_property
    def sha256(self) -> str:
        """sha256 of the archive file; for a folder, a hash over the sorted relative paths and bytes of its data."""
        return self.storage.sha256(self._data_files())

    @property
    def checksum_status(self) -> str:
        if isinstance(self.storage, _Folder):
            return "unverified: content hash of a local folder"
        known = next((known for known in DATASETS.values() if known.layout.title == self.classes.dataset), None)
        algorithm, published = known.digest if known is not None else ("sha256", None)
        if (self.sha256 if algorithm == "sha256" else file_digest(self.storage.path, algorithm)) == published:
            return "official"
        return "unverified: not the official archive's checksum"

    @property
    @abstractmethod
    def classes(self) -> Classes:
        """The dataset's classes, in label order."""

    def load(self, split: str, classes: Sequence[int] | None = None) -> LabeledImages:
        """Images and labels of `split`, only of the `classes` labels if given (then only those are decoded).

        Order: as stored for the python batches; by class, then file name, for a class-folder tree.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        count = len(self.classes)
        labels = sorted(set(range(count) if classes is None else classes))
        if any(not 0 <= label < count for label in labels):
            raise ValueError(f"class labels must be in 0..{count - 1}, got {labels}")
        images, image_labels = self._load(split, labels)
        return LabeledImages(images, image_labels, self.classes)

    def describe(self) -> dict:
        """JSON-able summary: source, kind, dataset, sha256, checksum status and image counts per split per class."""
        return {
            "source": self.source,
            "kind": self.kind,
            "dataset": self.classes.dataset,
            "sha256": self.sha256,
            "checksum_status": self.checksum_status,
            "counts": {split: dict(zip(self.classes.names, counts)) for split, counts in self._counts().items()},
        }

    @abstractmethod
    def _load(self, split: str, labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 (N, 32, 32, 3) and labels int64 (N,) of `split`, of the `labels` classes only."""

    @abstractmethod
    def _counts(self) -> dict[str, list[int]]:
        """Images per class in label order, per split."""

    @abstractmethod
    def _data_files(self) -> list[str]: ...


class _PythonBatches(RealData):
    """An official python version: pickled batches of 3072-byte rows, channel-major R(1024) G(1024) B(1024)."""

    def __init__(self, storage: "_Storage", layout: PickledLayout, prefix: str = ""):
        super().__init__(storage, prefix)
        self.layout = layout

    @property
    def kind(self) -> str:
        return f"{self.layout.title} python batches ({self.storage.kind})"

    @cached_property
    def classes(self) -> Classes:
        if self.layout.meta is None:
            return CIFAR10
        name = self.prefix + self.layout.meta
        return Classes.checked(self.layout.title, _parse_meta(self.storage.read_all([name])[name],
                                                              self.storage.locate(name), self.layout),
                               self.storage.locate(name))

    def _load(self, split, labels):
        rows, row_labels = self._read_batches([split])[split]
        if len(labels) < len(self.classes):
            keep = np.isin(row_labels, labels)
            rows, row_labels = rows[keep], row_labels[keep]
        return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), row_labels

    def _counts(self):
        return {split: np.bincount(labels, minlength=len(self.classes)).tolist()
                for split, (_, labels) in self._read_batches(SPLITS).items()}

    def _data_files(self):
        return [self.prefix + name for name in self.layout.all_files]

    def _read_batches(self, splits: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Rows and labels per split, read in one pass (an archive is decompressed once)."""
        count = len(self.classes)
        names = {split: [self.prefix + name for name in self.layout.files[split]] for split in splits}
        blobs = self.storage.read_all([name for split_names in names.values() for name in split_names])
        result = {}
        for split, split_names in names.items():
            batches = [_parse_batch(blobs.pop(name), self.storage.locate(name), self.layout, count)
                       for name in split_names]
            result[split] = (np.concatenate([rows for rows, _ in batches]),
                             np.concatenate([labels for _, labels in batches]))
        return result


class _ClassFolders(RealData):
    """A tree `{train,test}/<class>/<image>`; files are sorted by name so every load yields the same order.

    The classes are the class folders' names sorted (Python's `sorted`, by Unicode code point), so CIFAR-10's tree
    keeps CIFAR-10's labels; train and test must have the same class folders."""

    @property
    def kind(self) -> str:
        return f"class-folder images ({self.storage.kind})"

    @cached_property
    def classes(self) -> Classes:
        folders = {split: self._listing[split] for split in SPLITS}
        for split, other in (SPLITS, SPLITS[::-1]):
            if not folders[split]:
                where = self.storage.locate(self.prefix + split)
                raise UserError(f"missing split folder {where} (expected {split}/<class>/*.png|jpg|jpeg)")
            lacking = sorted(set(folders[other]) - set(folders[split]))
            if lacking:
                where = self.storage.locate(f"{self.prefix}{split}/{lacking[0]}")
                raise UserError(f"missing class folder {where} (or it holds no .png/.jpg/.jpeg images), though "
                                f"{other}/{lacking[0]} is there: train and test need the same class folders")
        names = sorted(folders["train"])
        dataset = CIFAR10.dataset if tuple(names) == CIFAR10.names else self._tree_name()
        return Classes.checked(dataset, names, self.storage.locate(self.prefix + "train"))

    def _tree_name(self) -> str:
        """What to call a tree's dataset: its folder's (or archive's) name."""
        name = self.prefix.rstrip("/") or self.storage.path.name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
            name = name.removesuffix(suffix)
        return name

    def _load(self, split, labels):
        files = self._class_files(split)
        wanted = [(name, label) for label in labels for name in files[label]]
        blobs = self.storage.read_all([name for name, _ in wanted])
        images = np.empty((len(wanted), *IMAGE_SHAPE), np.uint8)
        for i, (name, _) in enumerate(wanted):
            # Serial on purpose: decoding a 32×32 image is mostly Python header parsing, so threads only add overhead.
            images[i] = decode_image(blobs.pop(name), self.storage.locate(name))
        return images, np.array([label for _, label in wanted], np.int64)

    def _counts(self):
        return {split: [len(names) for names in self._class_files(split)] for split in SPLITS}

    def _data_files(self):
        # Every image present, valid or not, so the hash does not depend on which split a command reads.
        return [name for folders in self._listing.values() for names in folders.values() for name in names]

    @cached_property
    def _listing(self) -> dict[str, dict[str, list[str]]]:
        """split → class folder → image file names; hidden or non-image files and deeper folders are ignored."""
        listing: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
        for name in self.storage.names():
            parts = name[len(self.prefix):].split("/") if name.startswith(self.prefix) else []
            if len(parts) == 3 and parts[0] in SPLITS and not parts[1].startswith(".") and is_image_name(parts[2]):
                listing[parts[0]].setdefault(parts[1], []).append(name)
        return listing

    def _class_files(self, split: str) -> list[list[str]]:
        """Sorted image names per class in label order."""
        return [sorted(self._listing[split][name]) for name in self.classes.names]


# --- where the files live -------------------------------------------------------------------------------------------

class _Storage(ABC):
    """A folder or an archive; files are addressed by relative POSIX names."""

    kind: str

    def __init__(self, path: Path):
        self.path = path

    @abstractmethod
    def names(self) -> Iterable[str]:
        """Names of all regular files."""

    @abstractmethod
    def read(self, names: Collection[str]) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) for each of `names` that exists (absent ones are skipped), in whatever order is cheapest."""

    @abstractmethod
    def locate(self, name: str) -> str:
        """How to name a file in messages."""

    def sha256(self, names: Sequence[str]) -> str:
        """sha256 of the archive file; a folder hashes the named files instead."""
        return sha256_file(self.path)

    def read_all(self, names: Sequence[str]) -> dict[str, bytes]:
        """Bytes of every one of `names`; an absent one is an error naming it."""
        blobs = dict(self.read(set(names)))
        missing = [name for name in names if name not in blobs]
        if missing:
            raise UserError(f"missing {self.locate(missing[0])}")
        return blobs


class _Folder(_Storage):
    kind = "folder"

    def names(self):
        names = []
        for directory, _, files in os.walk(self.path, followlinks=True):  # class folders may be symlinks
            relative = Path(directory).relative_to(self.path).as_posix()
            names.extend(file if relative == "." else f"{relative}/{file}" for file in files)
        return names

    def read(self, names):
        for name in names:
            path = os.path.join(self.path, name)  # plain strings: Path objects cost ~20 µs a file here
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except FileNotFoundError:
                continue
            except OSError as error:
                raise UserError(f"cannot read {path}: {error.strerror or error}") from None
            yield name, data

    def locate(self, name):
        return str(self.path / name)

    def sha256(self, names):
        digest = hashlib.sha256()
        for name, data in self.read(sorted(names)):
            # Length-prefixed so that moving bytes between a name and its content changes the hash.
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()


class _Archive(_Storage):
    def locate(self, name):
        return f"{self.path}:{name}"

    @contextmanager
    def _reading(self):
        try:
            yield
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
            raise UserError(f"cannot read archive {self.path} (corrupt or truncated?): {error}") from None


class _Tar(_Archive):
    """A compressed tar only reads fast front to back, so every access is one streaming pass that stops early."""

    kind = "tar archive"

    def __init__(self, path: Path):
        super().__init__(path)
        self._names: list[str] | None = None

    def names(self):
        """Streamed, so a caller can stop at the first telling name; remembered once a pass completes."""
        if self._names is not None:
            yield from self._names
            return
        names = []
        with self._reading(), tarfile.open(self.path, "r|*") as tar:
            for member in tar:
                if member.isfile():
                    names.append(_member_name(member.name))
                    yield names[-1]
        self._names = names

    def read(self, names):
        remaining = set(names)
        with self._reading(), tarfile.open(self.path, "r|*") as tar:
            for member in tar:
                if not remaining:
                    return
                name = _member_name(member.name)
                if member.isfile() and name in remaining:
                    remaining.discard(name)
                    yield name, tar.extractfile(member).read()


class _Zip(_Archive):
    kind = "zip archive"

    @cached_property
    def _names(self) -> list[str]:
        with self._reading(), zipfile.ZipFile(self.path) as archive:
            return [info.filename for info in archive.infolist() if not info.is_dir()]

    def names(self):
        return self._names

    def read(self, names):
        present = set(self.names())
        with self._reading(), zipfile.ZipFile(self.path) as archive:
            for name in names:
                if name in present:
                    yield name, archive.read(name)


# --- finding the data ------------------------------------------------------------------------------------------------

def _open(path: Path) -> RealData:
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if path.is_dir():
        data = _find_in_folder(path)
        if data is None:
            raise UserError(
                f"{path} holds no CIFAR-10, CIFAR-100 or class-folder tree: expected {_ARCHIVE_NAMES}, the python "
                f"batches (data_batch_1 …, or train, test and meta), their folder, or a class-folder tree "
                f"{_EXPECTED_TREE}"
            )
        return data
    name = path.name.lower()
    if name.endswith(".zip"):
        return _find_in_archive(_Zip(path))
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _find_in_archive(_Tar(path))
    raise UserError(
        f"unsupported file {path}: expected {_ARCHIVE_NAMES}, a .tar.gz/.tgz/.zip of a class-folder tree, or a folder"
    )


def _find_in_folder(folder: Path) -> RealData | None:
    """The real data in `folder` (python batches, their folder, a class-folder tree, or an official archive), if any."""
    for batches in (folder, *(folder / layout.folder for layout in _LAYOUTS)):
        for layout in _LAYOUTS:
            if any((batches / name).is_file() for name in layout.all_files):
                return _PythonBatches(_Folder(batches), layout)
    if any((folder / split).is_dir() for split in SPLITS):
        return _ClassFolders(_Folder(folder))
    for known in DATASETS.values():
        if (folder / known.archive_name).is_file():
            return _open(folder / known.archive_name)
    return None


def _find_in_archive(storage: _Archive) -> RealData:
    """Python batches at the top or in one folder (the first batch file decides, sparing a pass over a big tar), else
    a class-folder tree at the top or inside one top-level folder."""
    tree_roots = set()
    for name in storage.names():
        parts = name.split("/")
        layout = next((layout for layout in _LAYOUTS if parts[-1] in layout.all_files), None)
        if layout is not None and len(parts) <= 2:
            return _PythonBatches(storage, layout, prefix=name[:name.rfind("/") + 1])
        if len(parts) in (3, 4) and parts[-3] in SPLITS and is_image_name(parts[-1]):
            tree_roots.add("" if len(parts) == 3 else parts[0] + "/")
    if len(tree_roots) == 1:
        return _ClassFolders(storage, tree_roots.pop())
    if tree_roots:
        places = ", ".join(sorted(root or "./" for root in tree_roots))
        raise UserError(f"{storage.path} holds more than one class-folder tree (in {places}); keep one")
    raise UserError(
        f"{storage.path} holds no CIFAR-10, CIFAR-100 or class-folder tree: expected the python batches "
        f"(data_batch_1 …, or train, test and meta) or a class-folder tree {_EXPECTED_TREE}, optionally inside one "
        "top-level folder"
    )


def _member_name(name: str) -> str:
    return posixpath.normpath(name).lstrip("/")  # "./train/dog/x.png" → "train/dog/x.png"


# --- decoding --------------------------------------------------------------------------------------------------------

class _BatchUnpickler(pickle.Unpickler):
    """Allows only what CIFAR batches contain, so a pickle from a doubtful source cannot run code."""

    _ALLOWED = {
        ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol < 3
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str, title: str):
    try:
        return _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise UserError(f"{where} is not a readable {title} pickle (corrupt?): {error}") from None


def _parse_batch(data: bytes, where: str, layout: PickledLayout, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows uint8 (N, 3072) and labels int64 (N,) of one pickled batch."""
    batch = _unpickle(data, where, layout.title)
    if isinstance(batch, dict):
        rows, labels = batch.get(b"data"), np.asarray(batch.get(layout.labels_key, []))
        if (isinstance(rows, np.ndarray) and rows.dtype == np.uint8 and rows.ndim == 2 and rows.shape[1] == 3072
                and labels.shape == (len(rows),) and np.isin(labels, np.arange(classes)).all()):
            return rows, labels.astype(np.int64)
    raise UserError(f"{where} is not a {layout.title} batch (need b'data' uint8 (N, 3072) and "
                    f"{layout.labels_key!r} in 0–{classes - 1})")


def _parse_meta(data: bytes, where: str, layout: PickledLayout) -> list[str]:
    """The class names a `meta` pickle lists, in label order."""
    meta = _unpickle(data, where, layout.title)
    names = meta.get(layout.names_key) if isinstance(meta, dict) else None
    if not (isinstance(names, list) and all(isinstance(name, bytes) for name in names)):
        raise UserError(f"{where} is not a {layout.title} meta file (need {layout.names_key!r}, a list of names)")
    return [name.decode("utf-8", "replace") for name in names]


# --- downloading -----------------------------------------------------------------------------------------------------

def _download(url: str, target: Path, algorithm: str, expected: str, known: Official) -> None:
    """Stream `url` into a temporary file beside `target`, renamed to it only once the checksum matches.

    Whatever goes wrong (network, short read, bad checksum, Ctrl-C) the temporary file is removed, so a file at
    `target` is always complete.
    """
    with atomic_path(target) as temporary, temporary.open("wb") as file:
        digest = _stream(url, file, algorithm, known)
        if digest != expected:
            raise UserError(f"download of {url} has {algorithm} {digest}, expected {expected}; discarded it. "
                            f"{known.local_copy_hint}")


class _LocalWriteFailed(OSError):
    """Writing the downloaded bytes to the local file failed (a full disk, a quota)."""


def _stream(url: str, file, algorithm: str, known: Official) -> str:
    """Copy `url` into `file` with a progress bar on stderr; returns the `algorithm` digest of what was received."""
    digest = hashlib.new(algorithm)
    received = 0
    title = known.layout.title
    progress = Progress(
        TextColumn(f"[bold]downloading {title}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True),
    )
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_SECONDS) as response, progress:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            task = progress.add_task("download", total=total)
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                try:
                    file.write(chunk)
                except OSError as error:
                    raise _LocalWriteFailed(error.errno, error.strerror) from None
                received += len(chunk)
                progress.update(task, completed=received)
    except _LocalWriteFailed:
        raise  # not the download's fault: `atomic_path` names the file and the space free there
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = error.reason if type(error) is urllib.error.URLError else error
        raise UserError(f"could not download {title} from {url}: {reason}. {known.local_copy_hint}") from None
    if total is not None and received != total:
        raise UserError(
            f"download of {url} was cut off after {received} of {total} bytes; try again. {known.local_copy_hint}"
        )
    return digest.hexdigest()
