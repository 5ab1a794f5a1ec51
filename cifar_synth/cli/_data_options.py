"""The real-data options of `train`, `select`, `evaluate` and `data` (--data, --dataset), declared once."""

from pathlib import Path
from typing import Annotated

import typer

Data = Annotated[Path | None, typer.Option(
    "--data", help="Real data: an official CIFAR-10 or CIFAR-100 archive or its extracted folder, or a class-folder "
                   "tree ROOT/{train,test}/<class>/*.png|jpg of any classes (folder, .tar.gz or .zip). Default: "
                   "without --dataset $CIFAR_SYNTH_DATA, else datasets/<dataset>/ (downloaded if absent).")]
Dataset = Annotated[str | None, typer.Option(
    "--dataset", metavar="cifar10|cifar100",
    help="The official dataset to read from datasets/<dataset>/ (downloaded if absent) when --data is not given, "
         "or that --data must hold. Default: cifar10.")]
