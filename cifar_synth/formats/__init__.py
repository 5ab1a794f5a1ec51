"""The export's data formats, in one registry: `FORMATS` maps each name to its writer, its reader and how the dataset
card describes its files. Each format's module holds its layout, writer and reader side by side:

    parquet.py   data/train-XXXXX-of-YYYYY.parquet   img: struct{bytes: PNG, path}, label: int64 (the Hub's layout)
    csv.py       csv/train.csv                        label, label_name, r0c0_r, r0c0_g, …, r31c31_b
    images.py    images/<class>/<index>.png           the tree image_dataset_from_directory and ImageFolder read

A writer takes the export's batches in order (`write`), then `finish` returns the manifest's entries for its files
(`cifar_synth.formats.base`). Only numpy, pyarrow, pandas and Pillow are imported here: PNG encoding runs in worker
processes without TensorFlow.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cifar_synth.classes import Classes
from cifar_synth.formats import csv, images, parquet
from cifar_synth.formats.base import Writer
from cifar_synth.images import LabeledImages


@dataclass(frozen=True)
class Format:
    """One export format: its writer, its reader (`find` the files of a folder, `read` them as a dataset's classes)
    and its card text."""

    name: str
    writer: type[Writer]
    find: Callable[[Path], list[Path]]
    read: Callable[[list[Path], Classes], LabeledImages]
    where: str  # where an export keeps its files, as the card's table of files shows it
    describe: Callable[[Classes], str]  # what the files hold, for the card


FORMATS: dict[str, Format] = {fmt.name: fmt for fmt in (  # in preference order when an export holds several
    Format("parquet", parquet.ParquetWriter, parquet.find, parquet.read, f"`{parquet.DATA_DIR}/train-*.parquet`",
           lambda classes: "Parquet: columns `img` (PNG bytes and a name `<class>/<index>.png`) and `label` "
                           f"(0–{len(classes) - 1} in {classes.dataset} order: {', '.join(classes.names)})."),
    Format("images", images.ImagesWriter, images.find, images.read, f"`{images.IMAGES_DIR}/<class>/<index>.png`",
           lambda classes: f"`{images.IMAGES_DIR}/` is the class-folder tree that Keras' "
                           "`image_dataset_from_directory` and torchvision's `ImageFolder` read."),
    Format("csv", csv.CsvWriter, csv.find, csv.read, f"`{csv.CSV_FILE}`",
           lambda classes: f"`{csv.CSV_FILE}`: columns `label`, `label_name`, then the 3,072 pixel values `r0c0_r` "
                           "… `r31c31_b` (row-major over the 32×32 grid, then red, green, blue)."),
)}
