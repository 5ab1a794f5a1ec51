"""cifar-synth: labeled synthetic datasets (CIFAR-10, CIFAR-100 or any class-folder tree of 32×32 images) from
per-class DCGANs.

The functions behind the commands, for scripts (see the README's "Python API"); each is imported on first use,
so `import cifar_synth` stays light (no TensorFlow):

    train_classes, GANConfig, TrainOptions          cifar-synth train
    export_dataset, ExportOptions                   cifar-synth export
    evaluate_synthetic, EvaluateOptions,            cifar-synth evaluate (Report: what it returns; Report.load)
    EvaluatorConfig, Report
    publish_export                                  cifar-synth publish
    sample_rows, save_sample_sheet                  cifar-synth show
    load_synthetic, load_tf_dataset                 an export as arrays or as a tf.data.Dataset
    update_card                                     an evaluation's figures into an export's dataset card
"""

import importlib

from cifar_synth.tensorflow_startup import quiet_tensorflow_import

__version__ = "0.1.0"

# Here, not in the CLI: every process imports this package before TensorFlow, the workers of `train --parallel`,
# Slurm and Ray jobs and Python API scripts included.
quiet_tensorflow_import()

_API = {
    "train_classes": "cifar_synth.training", "TrainOptions": "cifar_synth.config", "GANConfig": "cifar_synth.config",
    "export_dataset": "cifar_synth.exporter", "ExportOptions": "cifar_synth.exporter",
    "evaluate_synthetic": "cifar_synth.evaluator", "EvaluateOptions": "cifar_synth.evaluator",
    "EvaluatorConfig": "cifar_synth.classifier",
    "publish_export": "cifar_synth.hub", "sample_rows": "cifar_synth.sheet", "save_sample_sheet": "cifar_synth.sheet",
    "load_synthetic": "cifar_synth.synthetic", "load_tf_dataset": "cifar_synth.synthetic",
    "update_card": "cifar_synth.card", "Report": "cifar_synth.report",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'cifar_synth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
