"""Reference implementation of the hobby DCGAN recipe that cifar-synth is measured against.

Written to the letter of the common tutorial recipe, including its per-batch Python loop with three
`train_on_batch` calls and `generator.predict` for the fakes — that loop is what the benchmarks compare with.

    python benchmarks/hobby_recipe.py --class dog --data DATA --run-dir WORK/hobby/dog --minutes 6

The run directory gets what `cifar-synth export` reads: generator.keras, config.json and history.csv.
"""

import argparse
import csv
import io
import json
import time
from pathlib import Path

import numpy as np
from _common import configure_threads, load_class_images

LATENT_DIM = 100
BATCH_SIZE = 64  # real images per step; as many fakes for D, twice as many latent points for G


def build_hobby_models():
    """(generator, discriminator, stacked): D and the stacked G→D model compiled with BCE and Adam(2e-4, β1 0.5)."""
    import keras
    from keras import layers

    generator = keras.Sequential(
        [
            keras.Input((LATENT_DIM,)),
            layers.Dense(4 * 4 * 256),
            layers.LeakyReLU(0.2),
            layers.Reshape((4, 4, 256)),
            *[layer for _ in range(3) for layer in (
                layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2))],
            layers.Conv2D(3, 3, padding="same", activation="tanh"),
        ],
        name="hobby_generator",
    )
    discriminator = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(64, 3, padding="same"),
            layers.LeakyReLU(0.2),
            *[layer for filters in (128, 128, 256) for layer in (
                layers.Conv2D(filters, 3, strides=2, padding="same"), layers.LeakyReLU(0.2))],
            layers.Flatten(),
            layers.Dropout(0.4),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="hobby_discriminator",
    )
    discriminator.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss="binary_crossentropy")
    # Keras 3 fixes a model's trainable variables when its train function is first traced, not at compile
    # time as tf.keras 2 did; HobbyTrainer.step therefore sets D's flag before each call, which gives the
    # tutorial's intended semantics: D learns in its own step and is frozen inside the stacked model.
    discriminator.trainable = False
    stacked = keras.Sequential([generator, discriminator], name="hobby_gan")
    stacked.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss="binary_crossentropy")
    return generator, discriminator, stacked


class HobbyTrainer:
    """The three models and the recipe's training step."""

    def __init__(self, seed: int = 0):
        import keras

        keras.utils.set_random_seed(seed)
        self.generator, self.discriminator, self.stacked = build_hobby_models()
        self.rng = np.random.default_rng(seed)
        self._real_labels = np.ones((BATCH_SIZE, 1), np.float32)
        self._fake_labels = np.zeros((BATCH_SIZE, 1), np.float32)
        self._gan_labels = np.ones((2 * BATCH_SIZE, 1), np.float32)

    def latents(self, n: int) -> np.ndarray:
        return self.rng.standard_normal((n, LATENT_DIM)).astype(np.float32)

    def step(self, real: np.ndarray) -> tuple[float, float]:
        """One step on BATCH_SIZE real images in [-1, 1]; returns (mean D loss over real and fake, G loss)."""
        self.discriminator.trainable = True
        d_loss_real = self.discriminator.train_on_batch(real, self._real_labels)
        fake = self.generator.predict(self.latents(BATCH_SIZE), verbose=0)
        d_loss_fake = self.discriminator.train_on_batch(fake, self._fake_labels)
        self.discriminator.trainable = False
        g_loss = self.stacked.train_on_batch(self.latents(2 * BATCH_SIZE), self._gan_labels)
        return (float(d_loss_real) + float(d_loss_fake)) / 2, float(g_loss)


def train_hobby(images_uint8: np.ndarray, run_dir, minutes: float | None = None, steps: int | None = None,
                seed: int = 0, on_step=None, class_name: str | None = None) -> dict:
    """Train the hobby recipe until `minutes` of training-loop wall time or `steps` steps, whichever comes first.

    Batches are drawn by reshuffling the images every epoch (a last partial batch is dropped).
    `on_step(step, logs)` is called after every step with logs {"d_loss", "g_loss"}. `class_name` defaults to
    the run directory's name (runs/<class>/). Writes generator.keras, config.json and history.csv into
    `run_dir` and returns the config written.
    """
    if minutes is None and steps is None:
        raise ValueError("give minutes, steps or both")
    from cifar_synth.images import to_unit_range

    steps_per_epoch = len(images_uint8) // BATCH_SIZE
    if steps_per_epoch == 0:
        raise ValueError(f"need at least {BATCH_SIZE} images, got {len(images_uint8)}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = HobbyTrainer(seed)
    real = to_unit_range(images_uint8)

    history = []
    step = 0
    started = time.perf_counter()
    deadline = None if minutes is None else started + 60.0 * minutes
    while not _finished(step, steps, deadline):
        epoch_started = time.perf_counter()
        d_losses, g_losses = [], []
        order = trainer.rng.permutation(len(real))
        for batch in range(steps_per_epoch):
            d_loss, g_loss = trainer.step(real[order[batch * BATCH_SIZE:(batch + 1) * BATCH_SIZE]])
            d_losses.append(d_loss)
            g_losses.append(g_loss)
            step += 1
            if on_step is not None:
                on_step(step, {"d_loss": d_loss, "g_loss": g_loss})
            if _finished(step, steps, deadline):
                break
        history.append({"epoch": len(history) + 1, "steps": len(d_losses), "d_loss": np.mean(d_losses),
                        "g_loss": np.mean(g_losses), "seconds": time.perf_counter() - epoch_started})
    seconds = time.perf_counter() - started

    config = {
        "recipe": "hobby",
        "class_name": class_name or run_dir.name,
        "latent_dim": LATENT_DIM,
        "batch_size": BATCH_SIZE,
        "seed": seed,
        "minutes": minutes,
        "max_steps": steps,
        "steps": step,
        "epochs": round(step / steps_per_epoch, 4),
        "images_seen": step * BATCH_SIZE,
        "seconds": round(seconds, 2),
    }
    _save(trainer.generator, run_dir, config, history)
    return config


def _finished(step: int, max_steps: int | None, deadline: float | None) -> bool:
    return (max_steps is not None and step >= max_steps) or (deadline is not None and time.perf_counter() >= deadline)


def _save(generator, run_dir: Path, config: dict, history: list[dict]) -> None:
    from cifar_synth.files import atomic_path, write_json_atomic
    from cifar_synth.runs import RunPaths

    paths = RunPaths(run_dir)
    with atomic_path(paths.generator) as temp:
        generator.save(temp)
    write_json_atomic(paths.config, config)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["epoch", "steps", "d_loss", "g_loss", "seconds"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, "d_loss": f"{row['d_loss']:.5f}", "g_loss": f"{row['g_loss']:.5f}",
                      "seconds": f"{row['seconds']:.2f}"} for row in history)
    with atomic_path(paths.history) as temp:
        temp.write_text(table.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class", dest="class_name", required=True, help="CIFAR-10 class to train on")
    parser.add_argument("--data", help="real CIFAR-10 (as for cifar-synth --data)")
    parser.add_argument("--run-dir", required=True, type=Path, help="where generator.keras etc. are written")
    parser.add_argument("--minutes", type=float, help="wall-time budget of the training loop")
    parser.add_argument("--steps", type=int, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="TensorFlow threads per pool (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()
    if args.minutes is None and args.steps is None:
        parser.error("give --minutes, --steps or both")

    from cifar_synth.classes import CIFAR10

    configure_threads(args.threads)
    (class_name,) = CIFAR10.parse([args.class_name])
    images = load_class_images(args.data, class_name)

    def report(step, logs):
        if step % 100 == 0:
            print(f"step {step}  d_loss {logs['d_loss']:.3f}  g_loss {logs['g_loss']:.3f}", flush=True)

    config = train_hobby(images, args.run_dir, minutes=args.minutes, steps=args.steps, seed=args.seed,
                         on_step=None if args.quiet else report, class_name=class_name)
    print(json.dumps(config))


if __name__ == "__main__":
    main()
