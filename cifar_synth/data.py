"""Real CIFAR-10: the one loader train and evaluate share.

Reads the official `cifar-10-python.tar.gz` (without extracting it), its extracted `cifar-10-batches-py/` folder, or a
class-folder tree `ROOT/{train,test}/<class>/*.{png,jpg,jpeg}` as a folder, .tar.gz/.tgz/.tar or .zip. Imports only
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
from functools import cached_property
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from cifar_synth.classes import CLASS_NAMES
from cifar_synth.errors import UserError
from cifar_synth.files import atomic_path, sha256_file
from cifar_synth.formats.images import decode_image, is_image_name
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
DEFAULT_DIR = Path("datasets") / "cifar10"  # relative to the current directory, like runs/
SPLITS = ("train", "test")

_BATCH_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_ALL_BATCH_FILES = _BATCH_FILES["train"] + _BATCH_FILES["test"]
_DOWNLOAD_TIMEOUT_SECONDS = 30
_CHUNK_BYTES = 1 << 20
_LOCAL_COPY_HINT = (
    "To use a local copy instead, point --data or CIFAR_SYNTH_DATA at cifar-10-python.tar.gz, its extracted "
    "cifar-10-batches-py/ folder, or a class-folder tree ROOT/{train,test}/<class>/*.png|jpg (folder, .tar.gz or .zip)."
)
_EXPECTED_TREE = "{train,test}/<class>/*.png|jpg|jpeg"


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
    return (LabeledImages(data.images[~held], data.labels[~held]),
            LabeledImages(data.images[held], data.labels[held]))


def open_real_data(path: str | Path | None = None, *, download: bool = True) -> "RealData":
    """The CIFAR-10 at `path`, else at env CIFAR_SYNTH_DATA, else in datasets/cifar10/ (downloaded if absent)."""
    if path is None:
        path = os.environ.get("CIFAR_SYNTH_DATA") or None
    if path is not None:
        return _open(Path(path))
    data = _find_in_folder(DEFAULT_DIR) if DEFAULT_DIR.is_dir() else None
    if data is not None:
        return data
    if not download:
        raise UserError(f"no CIFAR-10 found in {DEFAULT_DIR}/. Run `cifar-synth data fetch`. {_LOCAL_COPY_HINT}")
    archive, _ = fetch_official(DEFAULT_DIR)
    return _open(archive)


def fetch_official(dest_dir: str | Path = DEFAULT_DIR) -> tuple[Path, bool]:
    """Make sure `dest_dir/cifar-10-python.tar.gz` is the verified official archive; True if it was downloaded now.

    Env CIFAR_SYNTH_URL overrides the address and CIFAR_SYNTH_SHA256 the expected checksum (a mirror or a test server).
    """
    target = Path(dest_dir) / ARCHIVE_NAME
    expected = os.environ.get("CIFAR_SYNTH_SHA256", OFFICIAL_SHA256).strip().lower()
    if target.is_file() and sha256_file(target) == expected:
        return target, False
    _download(os.environ.get("CIFAR_SYNTH_URL", OFFICIAL_URL), target, expected)
    return target, True


class RealData(ABC):
    """One CIFAR-10 source: `load` decodes a split (optionally only some classes), `describe` summarises it."""

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
        if self.sha256 == OFFICIAL_SHA256:
            return "official"
        if isinstance(self.storage, _Folder):
            return "unverified: content hash of a local folder"
        return "unverified: not the official archive's checksum"

    def load(self, split: str, classes: Sequence[int] | None = None) -> LabeledImages:
        """Images and labels of `split`, only of the `classes` labels if given (then only those are decoded).

        Order: as stored for the python batches; by class, then file name, for a class-folder tree.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        labels = sorted(set(range(len(CLASS_NAMES)) if classes is None else classes))
        if any(not 0 <= label < len(CLASS_NAMES) for label in labels):
            raise ValueError(f"class labels must be in 0..{len(CLASS_NAMES) - 1}, got {labels}")
        return self._load(split, labels)

    def describe(self) -> dict:
        """JSON-able summary: source, kind, sha256, checksum status and image counts per split per class."""
        return {
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
            "checksum_status": self.checksum_status,
            "counts": {split: dict(zip(CLASS_NAMES, counts)) for split, counts in self._counts().items()},
        }

    @abstractmethod
    def _load(self, split: str, labels: list[int]) -> LabeledImages: ...

    @abstractmethod
    def _counts(self) -> dict[str, list[int]]:
        """Images per class in label order, per split."""

    @abstractmethod
    def _data_files(self) -> list[str]: ...


class _PythonBatches(RealData):
    """The official python version: pickled batches of 3072-byte rows, channel-major R(1024) G(1024) B(1024)."""

    @property
    def kind(self) -> str:
        return f"CIFAR-10 python batches ({self.storage.kind})"

    def _load(self, split, labels):
        rows, row_labels = self._read_batches([split])[split]
        if len(labels) < len(CLASS_NAMES):
            keep = np.isin(row_labels, labels)
            rows, row_labels = rows[keep], row_labels[keep]
        images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return LabeledImages(np.ascontiguousarray(images), row_labels)

    def _counts(self):
        return {split: np.bincount(labels, minlength=len(CLASS_NAMES)).tolist()
                for split, (_, labels) in self._read_batches(SPLITS).items()}

    def _data_files(self):
        return [self.prefix + name for name in _ALL_BATCH_FILES]

    def _read_batches(self, splits: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Rows and labels per split, read in one pass (an archive is decompressed once)."""
        names = {split: [self.prefix + name for name in _BATCH_FILES[split]] for split in splits}
        blobs = self.storage.read_all([name for split_names in names.values() for name in split_names])
        result = {}
        for split, split_names in names.items():
            batches = [_parse_batch(blobs.pop(name), self.storage.locate(name)) for name in split_names]
            result[split] = (np.concatenate([rows for rows, _ in batches]),
                             np.concatenate([labels for _, labels in batches]))
        return result


class _ClassFolders(RealData):
    """A tree `{train,test}/<class>/<image>`; files are sorted by name so every load yields the same order."""

    @property
    def kind(self) -> str:
        return f"class-folder images ({self.storage.kind})"

    def _load(self, split, labels):
        files = self._class_files(split)
        wanted = [(name, label) for label in labels for name in files[label]]
        blobs = self.storage.read_all([name for name, _ in wanted])
        images = np.empty((len(wanted), *IMAGE_SHAPE), np.uint8)
        for i, (name, _) in enumerate(wanted):
            # Serial on purpose: decoding a 32×32 image is mostly Python header parsing, so threads only add overhead.
            images[i] = decode_image(blobs.pop(name), self.storage.locate(name))
        return LabeledImages(images, np.array([label for _, label in wanted], np.int64))

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
        """Sorted image names per class in label order; a missing split or a missing or unknown class is an error."""
        folders = self._listing[split]
        split_dir = self.prefix + split
        if not folders:
            where = self.storage.locate(split_dir)
            raise UserError(f"missing split folder {where} (expected {split}/<class>/*.png|jpg|jpeg)")
        expected = f"expected one folder per class: {', '.join(CLASS_NAMES)}"
        unknown = sorted(set(folders) - set(CLASS_NAMES))
        if unknown:
            raise UserError(f"unknown class folder {self.storage.locate(f'{split_dir}/{unknown[0]}')}; {expected}")
        missing = [name for name in CLASS_NAMES if name not in folders]
        if missing:
            where = self.storage.locate(f"{split_dir}/{missing[0]}")
            raise UserError(f"missing class folder {where} (or it holds no .png/.jpg/.jpeg images); {expected}")
        return [sorted(folders[name]) for name in CLASS_NAMES]


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
                f"{path} holds no CIFAR-10: expected {ARCHIVE_NAME}, the python batches (data_batch_1 …), "
                f"a {BATCHES_DIR}/ folder, or a class-folder tree {_EXPECTED_TREE}"
            )
        return data
    name = path.name.lower()
    if name.endswith(".zip"):
        return _find_in_archive(_Zip(path))
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _find_in_archive(_Tar(path))
    raise UserError(
        f"unsupported file {path}: expected {ARCHIVE_NAME}, a .tar.gz/.tgz/.zip of a class-folder tree, or a folder"
    )


def _find_in_folder(folder: Path) -> RealData | None:
    """The CIFAR-10 in `folder` (batches, a batches subfolder, a class-folder tree, or the archive), if any."""
    for batches in (folder, folder / BATCHES_DIR):
        if any((batches / name).is_file() for name in _ALL_BATCH_FILES):
            return _PythonBatches(_Folder(batches))
    if any((folder / split).is_dir() for split in SPLITS):
        return _ClassFolders(_Folder(folder))
    if (folder / ARCHIVE_NAME).is_file():
        return _open(folder / ARCHIVE_NAME)
    return None


def _find_in_archive(storage: _Archive) -> RealData:
    """Python batches (the first batch file decides, sparing a pass over a big tar), else a class-folder tree at the
    top or inside one top-level folder."""
    tree_roots = set()
    for name in storage.names():
        if posixpath.basename(name) in _ALL_BATCH_FILES:
            return _PythonBatches(storage, prefix=name[:name.rfind("/") + 1])
        parts = name.split("/")
        if len(parts) in (3, 4) and parts[-3] in SPLITS and is_image_name(parts[-1]):
            tree_roots.add("" if len(parts) == 3 else parts[0] + "/")
    if len(tree_roots) == 1:
        return _ClassFolders(storage, tree_roots.pop())
    if tree_roots:
        places = ", ".join(sorted(root or "./" for root in tree_roots))
        raise UserError(f"{storage.path} holds more than one class-folder tree (in {places}); keep one")
    raise UserError(
        f"{storage.path} holds no CIFAR-10: expected the python batches (data_batch_1 …) "
        f"or a class-folder tree {_EXPECTED_TREE}, optionally inside one top-level folder"
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


def _parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows uint8 (N, 3072) and labels int64 (N,) of one pickled batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise UserError(f"{where} is not a readable CIFAR-10 batch (corrupt?): {error}") from None
    if isinstance(batch, dict):
        rows, labels = batch.get(b"data"), np.asarray(batch.get(b"labels", []))
        if (isinstance(rows, np.ndarray) and rows.dtype == np.uint8 and rows.ndim == 2 and rows.shape[1] == 3072
                and labels.shape == (len(rows),) and np.isin(labels, np.arange(len(CLASS_NAMES))).all()):
            return rows, labels.astype(np.int64)
    raise UserError(f"{where} is not a CIFAR-10 batch (need b'data' uint8 (N, 3072) and b'labels' in 0–9)")


# --- downloading -----------------------------------------------------------------------------------------------------

def _download(url: str, target: Path, expected_sha256: str) -> None:
    """Stream `url` into a temporary file beside `target`, renamed to it only once the checksum matches.

    Whatever goes wrong (network, short read, bad checksum, Ctrl-C) the temporary file is removed, so a file at
    `target` is always complete.
    """
    with atomic_path(target) as temporary, temporary.open("wb") as file:
        digest = _stream(url, file)
        if digest != expected_sha256:
            raise UserError(
                f"download of {url} has sha256 {digest}, expected {expected_sha256}; discarded it. {_LOCAL_COPY_HINT}"
            )


def _stream(url: str, file) -> str:
    """Copy `url` into `file` with a progress bar on stderr; returns the sha256 of what was received."""
    digest = hashlib.sha256()
    received = 0
    progress = Progress(
        TextColumn("[bold]downloading CIFAR-10"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True),
    )
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_SECONDS) as response, progress:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            task = progress.add_task("download", total=total)
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                file.write(chunk)
                received += len(chunk)
                progress.update(task, completed=received)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = error.reason if type(error) is urllib.error.URLError else error
        raise UserError(f"could not download CIFAR-10 from {url}: {reason}. {_LOCAL_COPY_HINT}") from None
    if total is not None and received != total:
        raise UserError(
            f"download of {url} was cut off after {received} of {total} bytes; try again. {_LOCAL_COPY_HINT}"
        )
    return digest.hexdigest()
