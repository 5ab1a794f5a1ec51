"""Samples of a class-aware shared start itself, without per-class fine-tuning, as a class-folder tree that
`cifar-synth evaluate --synthetic` scores like an export.

    python benchmarks/conditional_start.py --runs WORK/runs --out WORK/conditional-start --count 5000 [--seed 0]

The shared start of `cifar-synth train --class-aware` is one class-conditional generator (its moving average,
`runs/shared/generator.keras`, inputs [latent, class]). Class `label` gets the latents `export` would give a class
run (`cifar_synth.sampling.latent_batches`, standard normal), with the class fixed. Writes OUT/<class>/NNNNN.png.
"""

import argparse
import os
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="the runs folder holding the class-aware shared start")
    parser.add_argument("--out", required=True, help="class-folder tree to write (must not exist)")
    parser.add_argument("--count", type=int, default=5000, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from PIL import Image

    import cifar_synth.gan  # noqa: F401  (registers the class-conditional layers the generator is saved with)
    from cifar_synth.classes import SHARED_START
    from cifar_synth.images import to_uint8
    from cifar_synth.runs import RunPaths, read_config, runs_classes
    from cifar_synth.sampling import latent_batches
    from cifar_synth.saved_models import load_model

    shared = Path(args.runs) / SHARED_START
    if not read_config(shared)["gan"].get("class_aware"):
        raise SystemExit(f"{shared} is not a class-aware shared start (train it with --class-aware)")
    generator = load_model(RunPaths(shared).generator, "generator")
    latent_dim = generator.inputs[0].shape[1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    for label, name in enumerate(runs_classes(Path(args.runs)).names):
        folder = out / name
        folder.mkdir()
        index = 0
        for latents in latent_batches(args.seed, label, args.count, latent_dim, 500):
            labels = np.full(len(latents), label, dtype=np.int32)
            for image in to_uint8(np.asarray(generator([latents, labels], training=False))):
                Image.fromarray(image).save(folder / f"{index:05d}.png")
                index += 1
        print(f"{name}: {index} images", flush=True)


if __name__ == "__main__":
    main()
