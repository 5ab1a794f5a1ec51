"""Training throughput: steps and real images per second of cifar-synth's default training step vs the hobby reference.

    python benchmarks/throughput.py --data DATA [--class dog] [--rounds 5] [--steps 30] [--threads N]

Both recipes are built in one process, warmed up (tracing and compilation excluded), then timed in alternating
rounds (default, hobby, matmul, default, hobby, matmul, …) so that load from other processes hits both alike;
medians are reported. Where the default computes in bfloat16 (`--precision auto` on a CPU with native bfloat16), the
same step in float32 joins the rounds, so the gain of that choice is measured in the same run. Each recipe is also set against its FLOP-bound limit: the FLOPs its step spends per real
image (counted from the layer shapes) divided into this machine's measured float32 matmul rate.
"""

import argparse
import os
import statistics
import time
from dataclasses import replace

from _common import publish_results, configure_threads, load_class_images, markdown_table
from hobby_recipe import BATCH_SIZE as HOBBY_BATCH
from hobby_recipe import HobbyTrainer

# Cost of one pass over one example, in forward passes: the backward pass costs about one forward pass per
# gradient it computes — input gradients where gradients only flow through, plus weight gradients where the
# weights are trained.
PASS_COST = {"forward": 1, "input_grad": 2, "train": 3}


def forward_flops(model) -> int:
    """FLOPs (2 × multiply-adds) of one example's forward pass through the Dense and convolution layers.

    A transposed convolution is counted as every input pixel scattered over the whole kernel, which is what
    its gradient-of-convolution implementation computes. Biases, activations and normalisation are ignored.
    """
    from keras import layers

    macs = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, layers.Conv2DTranspose):
            kh, kw, cout, cin = layer.kernel.shape
            _, h, w, _ = layer.input.shape
            macs += h * w * kh * kw * cin * cout
        elif isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            macs += h * w * kh * kw * cin * cout
        elif isinstance(layer, layers.Dense):
            cin, cout = layer.kernel.shape
            macs += cin * cout
    return 2 * macs


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _leaf_layers(layer)
        else:
            yield layer


def flops_per_real_image(passes: list[tuple[int, int, str]], real_images: int) -> float:
    """Sum over the step's passes (forward FLOPs per example, examples, kind of pass), per real image."""
    return sum(flops * n * PASS_COST[kind] for flops, n, kind in passes) / real_images


def default_step_passes(gan, batch: int) -> list[tuple[int, int, str]]:
    """What `DCGAN.train_step` computes for `batch` real images (see cifar_synth/gan.py)."""
    g, d = forward_flops(gan.generator), forward_flops(gan.discriminator)
    return [
        (g, batch, "forward"),  # fakes for the D update (G's gradient is not taken)
        (d, batch, "train"),  # D on the real batch
        (d, batch, "train"),  # D on the fake batch
        (g, batch, "train"),  # G update on fresh latents …
        (d, batch, "input_grad"),  # … through D, whose weights are not updated there
    ]


def hobby_step_passes(trainer: HobbyTrainer) -> list[tuple[int, int, str]]:
    """What `HobbyTrainer.step` computes: three train_on_batch calls and a predict."""
    g, d = forward_flops(trainer.generator), forward_flops(trainer.discriminator)
    return [
        (d, HOBBY_BATCH, "train"),  # D on 64 real
        (g, HOBBY_BATCH, "forward"),  # generator.predict of 64 fakes
        (d, HOBBY_BATCH, "train"),  # D on 64 fake
        (g, 2 * HOBBY_BATCH, "train"),  # stacked model on 128 latent points: G trained …
        (d, 2 * HOBBY_BATCH, "input_grad"),  # … D frozen
    ]


def matmul_seconds(size: int = 2048, repeats: int = 3) -> float:
    """Median seconds of one float32 size×size matmul in a tf.function (traced before timing)."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="real CIFAR-10 (as for cifar-synth --data)")
    parser.add_argument("--class", dest="class_name", default="dog")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per recipe")
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per recipe before the rounds")
    parser.add_argument("--threads", type=int, help="TensorFlow threads per pool (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to the history")
    args = parser.parse_args()

    configure_threads(args.threads)
    from cifar_synth.gan import GANConfig, build_gan, make_dataset
    from cifar_synth.images import to_unit_range

    images = load_class_images(args.data, args.class_name)
    gan = build_gan(GANConfig(), seed=args.seed)
    config = gan.config  # with the precision resolved
    gans = {f"default (cifar_synth.gan, {config.precision})": gan}
    if config.precision != "float32":
        gans["default in float32"] = build_gan(replace(config, precision="float32"), seed=args.seed)
    dataset = make_dataset(images, config.batch_size, args.seed)
    hobby = HobbyTrainer(args.seed)
    real = to_unit_range(images)

    def run_gan(model):
        return lambda steps: model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)

    def run_hobby(steps):
        for _ in range(steps):
            hobby.step(real[hobby.rng.choice(len(real), HOBBY_BATCH, replace=False)])

    runners = {**{name: run_gan(model) for name, model in gans.items()}, "hobby reference": run_hobby}
    load_before = os.getloadavg()[0]
    for run in runners.values():
        run(args.warmup)
    matmul_size = 2048
    seconds = {name: [] for name in runners}
    matmul_s = []
    for round_ in range(1, args.rounds + 1):
        for name, run in runners.items():
            started = time.perf_counter()
            run(args.steps)
            seconds[name].append(time.perf_counter() - started)
        matmul_s.append(matmul_seconds(matmul_size))
        print(f"round {round_}/{args.rounds}: " + ", ".join(f"{name} {times[-1]:.2f} s" for name, times in
                                                             seconds.items()) + f" ({args.steps} steps each)",
              flush=True)

    gflops = 2 * matmul_size**3 / statistics.median(matmul_s) / 1e9
    recipes = [(name, config.batch_size, seconds[name],
                flops_per_real_image(default_step_passes(model, config.batch_size), config.batch_size))
               for name, model in gans.items()]
    recipes.append(("hobby reference", HOBBY_BATCH, seconds["hobby reference"],
                    flops_per_real_image(hobby_step_passes(hobby), HOBBY_BATCH)))
    rows, rates = [], []
    for name, batch, times, flops in recipes:
        rate = batch * args.steps / statistics.median(times)
        bound = gflops * 1e9 / flops
        rates.append(rate)
        rows.append([name, batch, f"{rate / batch:.2f}", f"{rate:.0f}", f"{min(batch * args.steps / s for s in times):.0f}–"
                     f"{max(batch * args.steps / s for s in times):.0f}", f"{flops / 1e6:.0f}",
                     f"{bound:.0f}", f"{rate / bound:.0%}"])
    table = markdown_table(
        ["recipe", "real images/step", "steps/s (median)", "real images/s (median)", "range over rounds", "MFLOP/real image",
         "FLOP-bound images/s", "fraction of bound"], rows)
    threads = args.threads or "TensorFlow default (all cores)"
    body = (
        f"Default recipe: `GANConfig()` = g_width {config.g_width}, d_width {config.d_width}, loss {config.loss}, "
        f"augment {config.augment or 'none'}, precision {config.precision}, EMA {config.ema_decay}.\n"
        f"Class `{args.class_name}`, {args.rounds} alternating rounds of {args.steps} steps per recipe after "
        f"{args.warmup} warm-up steps; threads: {threads}. Load average (1 min) before / after: "
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f} (other processes share the cores).\n"
        f"Matmul rate ({matmul_size}² float32, median of {args.rounds}): {gflops:.1f} GFLOP/s.\n\n"
        f"{table}\n\n"
        f"**Speed-up default / hobby: {rates[0] / rates[-1]:.2f}×** (median real images per second).\n"
        + (f"Default in {config.precision} / the same step in float32: {rates[0] / rates[1]:.2f}×; the FLOP bound "
           "uses the float32 matmul rate, which bfloat16 can exceed.\n" if len(gans) > 1 else "")
        + f"FLOPs count Dense and convolution layers only (backward ≈ 1× forward per gradient computed); "
        f"the default step also runs batch norm{', DiffAugment' if config.augment else ''} and the EMA update, "
        f"which add memory traffic but few FLOPs."
    )
    print()
    publish_results("Training throughput", body, append=not args.no_append)


if __name__ == "__main__":
    main()
