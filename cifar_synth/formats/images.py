"""Class-folder PNG trees: `images/<class>/<index>.png`, and the image checks real and synthetic data share.

`decode_image` and `is_image_name` are the one definition of an acceptable image file for every reader, the
real-data loader (`cifar_synth.data`) included: a `.png`/`.jpg`/`.jpeg` file (suffix in any case, hidden files
skipped) holding a 32×32 RGB image (any other size or mode is refused, not converted). In an export's tree each
image is in a folder named after its class (in any case).
"""

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_synth.classes import CIFAR10, Classes
from cifar_synth.errors import UserError
from cifar_synth.formats.base import Batch, Writer, concatenate
from cifar_synth.images import IMAGE_SHAPE, LabeledImages

IMAGES_DIR = "images"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def encode_png(image: np.ndarray) -> bytes:
    """One uint8 (32, 32, 3) image as PNG bytes; Pillow's encoder is deterministic for a given zlib."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_pngs(images: np.ndarray) -> list[bytes]:
    """`encode_png` of each image: the unit of work the export hands to its encoding processes."""
    return [encode_png(image) for image in images]


def decode_image(data: bytes, where: str) -> np.ndarray:
    """The uint8 (32, 32, 3) pixels of a PNG or JPEG file's bytes; anything else is a `UserError` naming `where`."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            if image.size != IMAGE_SHAPE[:2] or image.mode != "RGB":
                width, height = image.size
                raise UserError(f"{where} is a {width}×{height} {image.mode} image; images must be 32×32 RGB "
                                "(resize or convert them first)")
            return np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying "not a readable image"
        raise UserError(f"{where} is not a readable PNG or JPEG image: {error}") from None


def is_image_name(name: str) -> bool:
    """An image file name to read: a known suffix in any case; hidden files (macOS "._x.png" companions) skipped."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def class_folders(root: Path, classes: Classes) -> list[tuple[Path, int]]:
    """The class subfolders of `root` (named after `classes`, in any case: "Dog", "dog") in label order; any other
    subfolder is an error, none means not a tree."""
    labels = {name.casefold(): label for label, name in enumerate(classes.names)}
    folders = [entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")]
    known = [(folder, labels[folder.name.casefold()]) for folder in folders if folder.name.casefold() in labels]
    if not known:
        return []
    unknown = sorted(folder.name for folder in folders if folder.name.casefold() not in labels)
    if unknown:
        raise UserError(f"{root}: folders {', '.join(unknown)} are not {classes.dataset} classes "
                        f"({', '.join(classes.names)})")
    return sorted(known, key=lambda item: item[1])


def find(path: Path) -> list[Path]:
    """The class-folder root (of CIFAR-10's classes: a tree without a manifest) at `path` or in its `images/`, as a
    one-element list (empty if neither is one)."""
    return [root for root in (path / IMAGES_DIR, path) if root.is_dir() and class_folders(root, CIFAR10)][:1]


def read(roots: list[Path], classes: Classes) -> LabeledImages:
    images, labels = [], []
    for folder, label in class_folders(roots[0], classes):
        files = sorted(file for file in folder.iterdir() if is_image_name(file.name))
        folder_images = np.empty((len(files), *IMAGE_SHAPE), np.uint8)
        for index, file in enumerate(files):
            folder_images[index] = decode_image(file.read_bytes(), str(file))
        images.append(folder_images)
        labels.append(np.full(len(files), label, np.int64))
    return concatenate(images, labels, classes)


class ImagesWriter(Writer):
    """`images/<class>/<index>.png`; each class folder is one manifest entry whose sha256 covers names and bytes."""

    def __init__(self, root: Path, total_rows: int, classes: Classes):
        super().__init__(root, total_rows, classes)
        self.directory = root / IMAGES_DIR
        self.directory.mkdir()
        self.folders: dict[str, dict] = {}

    def write(self, batch: Batch) -> None:
        folder = self.directory / batch.class_name
        if batch.class_name not in self.folders:
            folder.mkdir()
            self.folders[batch.class_name] = {"digest": hashlib.sha256(), "rows": 0, "bytes": 0}
        entry = self.folders[batch.class_name]
        for name, png in zip(batch.names, batch.pngs):
            (folder / name).write_bytes(png)
            entry["digest"].update(name.encode() + b"\0" + png)
            entry["rows"] += 1
            entry["bytes"] += len(png)

    def finish(self) -> list[dict]:
        return [
            {"path": f"{IMAGES_DIR}/{name}", "format": "images", "rows": entry["rows"], "files": entry["rows"],
             "bytes": entry["bytes"], "sha256": entry["digest"].hexdigest()}
            for name, entry in self.folders.items()
        ]
