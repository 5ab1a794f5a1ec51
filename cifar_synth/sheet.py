"""The per-class sample sheet: one labelled row of images per class, as `cifar-synth show` and the card show it."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cifar_synth.files import atomic_path

SCALE = 2  # 32×32 images are too small to judge at 1:1
GAP = 2
LABEL_WIDTH = 96  # at least: wider when a class name needs it
FONT_SIZE = 14


def sample_sheet(rows: Sequence[tuple[str, np.ndarray]]) -> Image.Image:
    """An RGB image with one row per (class name, uint8 images (N, 32, 32, 3)): the name, then the images."""
    side = 32 * SCALE
    columns = max(len(images) for _, images in rows)
    font = _font([name for name, _ in rows])
    label_width = max(LABEL_WIDTH, *(int(font.getlength(name)) + 12 for name, _ in rows))
    sheet = Image.new("RGB", (label_width + columns * (side + GAP), len(rows) * (side + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (name, images) in enumerate(rows):
        top = GAP + row * (side + GAP)
        draw.text((6, top + side // 2), name, fill="black", font=font, anchor="lm")
        for column, image in enumerate(images):
            tile = Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(tile, (label_width + column * (side + GAP), top))
    return sheet


def _font(names: list[str]) -> ImageFont.FreeTypeFont:
    """Pillow's default font, which has ASCII glyphs only; for other letters (`Ñandú`) matplotlib's DejaVu Sans."""
    if all(name.isascii() for name in names):
        return ImageFont.load_default(size=FONT_SIZE)
    import matplotlib  # a dependency already (the report's confusion picture); only its data path is needed

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), FONT_SIZE)


def save_sample_sheet(path: str | Path, rows: Sequence[tuple[str, np.ndarray]]) -> Path:
    """`sample_sheet(rows)` written atomically as a PNG at `path`."""
    with atomic_path(path) as temp:
        sample_sheet(rows).save(temp, format="PNG")
    return Path(path)


def sample_rows(source: str | Path, per_class: int = 10, seed: int = 0,
                classes: Sequence[str] = ()) -> list[tuple[str, np.ndarray]]:
    """(class name, images) rows from a runs directory (its generators draw the export's first images for `seed`)
    or from anything `load_synthetic` reads (an export, a data file, a class-folder tree: its first images); only
    of the `classes` (`--class` values) if any are given."""
    from cifar_synth.runs import runs_classes, trained_classes
    from cifar_synth.sampling import first_images
    from cifar_synth.synthetic import load_synthetic

    source = Path(source)
    trained = trained_classes(source) if source.is_dir() else []
    if trained:
        wanted = runs_classes(source).parse(list(classes)) if classes else trained
        return [(name, first_images(source, name, per_class, seed)) for name in trained if name in wanted]

    data = load_synthetic(source)
    wanted = data.classes.parse(list(classes)) if classes else data.classes.names
    return [(name, data.of_class(label)[:per_class]) for label, name in enumerate(data.classes.names)
            if name in wanted and (data.labels == label).any()]
