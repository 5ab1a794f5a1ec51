"""`cifar-synth train`: parse options, then hand over to `cifar_synth.executors.train_with_executor`."""

from pathlib import Path
from typing import Annotated

import typer

from cifar_synth.cli._app import app, reporter, user_errors_exit
from cifar_synth.cli._data_options import Data, Dataset
from cifar_synth.cli._executor_options import DEFAULTS as EXECUTOR_DEFAULTS, TRAIN
from cifar_synth.config import (AUGMENTATIONS, BUDGET_CLOCKS, DEFAULT_STEPS, LOSSES, SHARED_STEPS_PER_CLASS_STEP,
                                 GANConfig, TrainOptions)

DEFAULTS = GANConfig()
TRAIN_DEFAULTS = TrainOptions()


@app.command("train")
@user_errors_exit
def train_command(
    class_names: Annotated[list[str], typer.Option(
        "--class", help="Class of the real data to train (case-insensitive); repeat it, or 'all' for all of them; "
                    "'shared' trains the shared start on all classes' images (first), for --init-from shared.")],
    steps: Annotated[int | None, typer.Option(
        help=f"Total training steps of each class (a rerun resumes up to this). Default {DEFAULT_STEPS} when "
             "neither --epochs nor --minutes is given.")] = None,
    shared_steps: Annotated[int | None, typer.Option(
        help=f"Total steps of the shared start, with a budget in steps. Default {SHARED_STEPS_PER_CLASS_STEP}× "
             "--steps.")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Total epochs instead of steps (a rerun resumes up to this).")] = None,
    minutes: Annotated[float | None, typer.Option(
        help="Time budget per class for this run's training loop, in minutes (see --budget-clock).")] = None,
    budget_clock: Annotated[str, typer.Option(
        metavar="|".join(BUDGET_CLOCKS), help="What --minutes counts: wall (elapsed time) or cpu (this process's CPU time, which other jobs on a "
             "shared machine do not eat into).")] = TRAIN_DEFAULTS.budget_clock,
    batch_size: Annotated[int, typer.Option(help="Real images per training step.")] = DEFAULTS.batch_size,
    latent_dim: Annotated[int, typer.Option(help="Size of the generator's latent vector.")] = DEFAULTS.latent_dim,
    g_width: Annotated[int, typer.Option(help="Generator width (channels of its last hidden layer).")] = DEFAULTS.g_width,
    d_width: Annotated[int, typer.Option(help="Discriminator width (channels of its first layer).")] = DEFAULTS.d_width,
    g_lr: Annotated[float, typer.Option("--g-lr", help="Generator Adam learning rate.")] = DEFAULTS.g_learning_rate,
    d_lr: Annotated[float, typer.Option("--d-lr", help="Discriminator Adam learning rate.")] = DEFAULTS.d_learning_rate,
    beta_1: Annotated[float, typer.Option("--beta1", help="Adam beta_1 for both networks.")] = DEFAULTS.beta_1,
    beta_2: Annotated[float, typer.Option("--beta2", help="Adam beta_2 for both networks.")] = DEFAULTS.beta_2,
    loss: Annotated[str, typer.Option(help=f"GAN loss: {' or '.join(LOSSES)}.")] = DEFAULTS.loss,
    spectral_norm: Annotated[bool, typer.Option(
        help="Spectrally normalise every discriminator layer (pairs with --loss hinge).")] = DEFAULTS.spectral_norm,
    class_aware: Annotated[bool, typer.Option(
        help="Train the shared start as one class-conditional GAN (projection discriminator); each class starts "
             "from it with its class fixed.")] = DEFAULTS.class_aware,
    augment: Annotated[str, typer.Option(
        help=f"Differentiable augmentation for D: comma list of {', '.join(AUGMENTATIONS)}; 'none' disables.")
    ] = DEFAULTS.augment or "none",
    ema: Annotated[float, typer.Option(
        help="Decay of the generator's weight moving average used for sampling; 0 disables.")] = DEFAULTS.ema_decay,
    flip: Annotated[bool, typer.Option(
        help="Randomly mirror the real images left-right (doubles a class's images).")] = DEFAULTS.flip,
    guidance: Annotated[float, typer.Option(
        help="Weight of classifier guidance: G is also trained toward a frozen real-trained CNN recognising its "
             "class; 0 disables.")] = DEFAULTS.guidance,
    guide: Annotated[Path | None, typer.Option(
        help="The real-trained classifier for --guidance (a .keras file like the evaluator's). Default: the one "
             "`cifar-synth evaluate` cached.")] = None,
    precision: Annotated[str, typer.Option(
        help="float32, mixed_bfloat16 (faster on CPUs with AVX512-BF16/AMX and recent GPUs), or auto: "
             "mixed_bfloat16 where the CPU computes bfloat16 natively, else float32.")
    ] = DEFAULTS.precision,
    init_from: Annotated[str | None, typer.Option(
        help="Where new runs' networks start: 'shared' (default: the shared start in --runs, trained on all "
             "classes first when there is none, reused when there is), a run directory, or 'none' (random "
             "weights). Runs that have a checkpoint resume from it instead.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = TRAIN_DEFAULTS.seed,
    data: Data = None,
    dataset: Dataset = None,
    runs: Annotated[Path, typer.Option(
        help="Directory holding one run directory per class, of one dataset's classes.")] = Path("runs"),
    sample_every: Annotated[int, typer.Option(help="Save a sample grid every N epochs.")] = TRAIN_DEFAULTS.sample_every,
    validation_fraction: Annotated[float, typer.Option(
        help="Share of each class's training images held out as the validation slice, never trained on (where "
             "snapshots and recipes are compared); 0 trains on all.")] = TRAIN_DEFAULTS.validation_fraction,
    snapshot_every: Annotated[int, typer.Option(
        help="Keep the generator every N steps and at the end of the budget, for `cifar-synth select`; 0 keeps "
             "none.")] = TRAIN_DEFAULTS.snapshot_every,
    include_test: Annotated[bool, typer.Option(
        help="Also train on the test split (evaluation on it is then no longer honest).")] = False,
    fresh: Annotated[bool, typer.Option(help="Start over instead of resuming an existing run.")] = False,
    tensorboard: Annotated[bool, typer.Option(help="Also write TensorBoard logs under runs/<class>/tb/.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
    executor: TRAIN.executor = EXECUTOR_DEFAULTS.executor,
    parallel: TRAIN.parallel = None,
    cpus_per_class: TRAIN.cpus = None,
    gpus_per_class: TRAIN.gpus = EXECUTOR_DEFAULTS.gpus_per_class,
    address: TRAIN.address = None,
    slurm_partition: TRAIN.slurm_partition = None,
    slurm_time: TRAIN.slurm_time = EXECUTOR_DEFAULTS.slurm_time,
    slurm_option: TRAIN.slurm_option = None,
):
    """Train one DCGAN per class of the real data (CIFAR-10 by default), by default from a shared start on all
    classes (trained first when --runs has none); rerunning the same command resumes."""
    from cifar_synth.executors import train_with_executor

    gan_config = GANConfig(
        latent_dim=latent_dim, g_width=g_width, d_width=d_width, batch_size=batch_size,
        g_learning_rate=g_lr, d_learning_rate=d_lr, beta_1=beta_1, beta_2=beta_2,
        loss=loss, spectral_norm=spectral_norm, class_aware=class_aware, augment="" if augment.lower() == "none" else augment, ema_decay=ema,
        precision=precision, flip=flip, guidance=guidance,
    )
    options = TrainOptions(epochs=epochs, steps=steps, shared_steps=shared_steps, minutes=minutes,
                           budget_clock=budget_clock, seed=seed, validation_fraction=validation_fraction,
                           snapshot_every=snapshot_every,
                           sample_every=sample_every, include_test=include_test, fresh=fresh, tensorboard=tensorboard,
                           guide=str(guide) if guide is not None else None, init_from=init_from)
    executor_options = TRAIN.options(executor, parallel, cpus_per_class, gpus_per_class, address, slurm_partition,
                                     slurm_time, slurm_option)
    train_with_executor(class_names, gan_config, options, data, runs, executor_options, reporter(quiet), dataset)
