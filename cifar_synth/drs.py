"""Discriminator rejection sampling (Azadi et al., "Discriminator Rejection Sampling", ICLR 2019): the filter of
`export --filter discriminator`, which keeps a generated image with a probability its own GAN's discriminator gives
it, no classifier involved.

A discriminator trained to optimality has the logit D̃(x) = log p_data(x) / p_g(x), so keeping x with probability
exp(D̃(x) − D̃*_max) would turn the generator's distribution into the data's. The paper's practical rule, used here,
softens that: F(x) = D̃(x) − D̃*_max − log(1 − exp(D̃(x) − D̃*_max − ε)) − γ, and x is kept with probability
sigmoid(F(x)); D̃*_max is estimated on burn-in samples and raised whenever a larger logit is seen, and γ is the 95th
percentile of F(x) (as the paper and Uber's reference implementation, `mhgan/mh.py` in
uber-research/metropolis-hastings-gans, set it).
"""

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cifar_synth.errors import UserError
from cifar_synth.files import sha256_file
from cifar_synth.filtering import MAX_CANDIDATES_PER_IMAGE
from cifar_synth.runs import REWRITE_GENERATOR, RunPaths, read_record, run_config
from cifar_synth.sampling import class_sampler

EPSILON = 1e-6
PERCENTILE = 95.0  # γ puts this percentile of F at 0: the top 5% of candidates are kept with probability ≥ 1/2
BURN_IN = 10_000  # candidates that estimate D̃*_max and γ before any is judged
ACCEPTANCE_SEED = 1  # the acceptance draws' stream: [seed, label, 1], beside the latents' [seed, label]
DRS_RULE = (
    "D̃(x) is the candidate's logit under its class run's own discriminator; D̃*_max starts as the largest logit of "
    f"the class's first `burn_in` candidates (the class's filter entry: {BURN_IN:,}, or every candidate the cap "
    "allows when that is fewer) and is raised to each candidate's logit when that is larger, before the candidate is "
    "judged; F(x) = D̃(x) − D̃*_max − log(1 − exp(D̃(x) − D̃*_max − epsilon)) − gamma, with gamma the "
    "`percentile`-th percentile over the burn-in candidates of F without gamma; candidate i is kept when u_i < "
    f"sigmoid(F(x_i)), u = numpy.random.default_rng([seed, label, {ACCEPTANCE_SEED}]).random(candidates) "
    "(cifar_synth.drs.acceptance_probabilities)"
)
DISCRIMINATOR_SOURCE = (
    "the discriminator of each class's own run, from the checkpoint its resume record names (the epoch of the "
    "exported generator), rebuilt from its config.json and evaluated in float32, without augmentation, on the "
    "exported uint8 images scaled to [-1, 1]; it was trained against the raw generator, while the candidates come "
    "from the exported one (the raw generator's moving average, when the run keeps one), and was not trained "
    "further before judging"
)


def drs_scores(logits: np.ndarray, logit_max: float, epsilon: float = EPSILON) -> np.ndarray:
    """F(x) without γ of candidates in order, given their logits and D̃*_max before the first of them."""
    logits = np.asarray(logits, np.float64)
    delta = logits - np.maximum(logit_max, np.maximum.accumulate(logits))  # ≤ 0: the maximum includes x itself
    return delta - np.log(-np.expm1(delta - epsilon))  # log(1 − e^t) as log(−expm1(t)): exact for t near 0


def calibrate(burn_in_logits: np.ndarray, percentile: float = PERCENTILE,
              epsilon: float = EPSILON) -> tuple[float, float]:
    """D̃*_max and γ from the burn-in candidates' logits."""
    logit_max = float(np.max(burn_in_logits))
    return logit_max, float(np.percentile(drs_scores(burn_in_logits, logit_max, epsilon), percentile))


def acceptance_probabilities(logits: np.ndarray, logit_max: float, gamma: float,
                             epsilon: float = EPSILON) -> np.ndarray:
    """sigmoid(F(x)) of candidates in order, given their logits, D̃*_max before the first of them and γ."""
    return np.exp(-np.logaddexp(0.0, gamma - drs_scores(logits, logit_max, epsilon)))


@dataclass(frozen=True)
class _Checkpoint:
    """Where a class run's discriminator is: its checkpoint and the settings that rebuild the networks."""

    path: Path
    epoch: int
    steps: int | None
    gan: dict


@dataclass
class _ClassState:
    """One class's DRS in progress."""

    burn_in: int
    logit_max_burn_in: float
    gamma: float
    logit_max: float
    draws: np.random.Generator
    logits: list[np.ndarray] = field(default_factory=list)


class DiscriminatorFilter:
    """DRS with each class run's own discriminator (`DISCRIMINATOR_SOURCE`): the export's filter for
    `filter_by="discriminator"`, judging the candidates of one class after another.

    The candidates come from the exported generator (the moving average of G, when the run keeps one) while D was
    trained against the raw G of the same step, which the moving average follows closely. The paper first trains D
    further against the fixed G (its KeepTraining step); here D is used as the run's checkpoint left it. A class
    whose `cifar-synth select` choice is not the final generator with standard-normal latents is refused: D was not
    trained against another snapshot's or another spread's images.
    """

    def __init__(self, runs_dir: Path, classes: list[str], seed: int, use_selection: bool = True):
        self.seed = seed
        self.runs_dir = Path(runs_dir)
        # Checked for every class before anything is generated: a missing checkpoint is one line, not a late failure.
        self.checkpoints = {name: _checkpoint(Path(runs_dir) / name, name, use_selection) for name in classes}
        self.states: dict[str, _ClassState] = {}
        self._discriminator, self._power_vectors = None, []
        self._burn_in_logits: deque[np.ndarray] = deque()

    def start_class(self, batches: Iterator[np.ndarray], label: int, class_name: str) -> Iterator[np.ndarray]:
        """Load the class's discriminator and estimate D̃*_max and γ on the first `BURN_IN` candidates of `batches`;
        returns all of `batches`, to be judged in order."""
        self._discriminator = None  # one discriminator in memory at a time
        self._discriminator, self._power_vectors = _load_discriminator(class_name, self.checkpoints[class_name])
        first, seen = [], 0
        for images in batches:
            first.append(images)
            seen += len(images)
            if seen >= BURN_IN:
                break
        # Kept for `accepts`, which gets these batches first: D judges each candidate once.
        self._burn_in_logits = deque(self._logits(images) for images in first)
        burn_in = np.concatenate(self._burn_in_logits)[:BURN_IN]
        logit_max, gamma = calibrate(burn_in)
        self.states[class_name] = _ClassState(len(burn_in), logit_max, gamma, logit_max,
                                              np.random.default_rng([self.seed, label, ACCEPTANCE_SEED]))
        return itertools.chain(first, batches)

    def accepts(self, images: np.ndarray, label: int, class_name: str) -> np.ndarray:
        """Boolean mask of the uint8 `images`, the class's next candidates, to keep."""
        state = self.states[class_name]
        logits = self._burn_in_logits.popleft() if self._burn_in_logits else self._logits(images)
        probabilities = acceptance_probabilities(logits, state.logit_max, state.gamma)
        state.logit_max = max(state.logit_max, float(logits.max()))
        state.logits.append(logits)
        return state.draws.random(len(logits)) < probabilities

    def _logits(self, images: np.ndarray) -> np.ndarray:
        from cifar_synth.images import to_unit_range

        # A spectrally normalised layer updates its power vector at every call; reset, D is one fixed function.
        for vector, value in self._power_vectors:
            vector.assign(value)
        return np.asarray(self._discriminator(to_unit_range(images), training=False), np.float64).reshape(-1)

    def class_record(self, class_name: str, candidates: int) -> dict:
        """The class's DRS figures for the manifest; `candidates` were examined."""
        state, checkpoint = self.states[class_name], self.checkpoints[class_name]
        examined = np.concatenate(state.logits)[:candidates]
        return {"burn_in": state.burn_in, "logit_max_burn_in": state.logit_max_burn_in, "gamma": state.gamma,
                "logit_max": max(state.logit_max_burn_in, float(examined.max())),
                "discriminator": {"checkpoint": checkpoint.path.relative_to(self.runs_dir).as_posix(), "sha256": sha256_file(checkpoint.path),
                                  "epoch": checkpoint.epoch, "steps": checkpoint.steps}}

    def shortfall(self, class_name: str) -> tuple[str, str, str]:
        """Who judged, at what setting, and what to do: the words of the error for a class left short."""
        return "discriminator rejection sampling", "", "lower --count, or train this class's GAN further"

    def __str__(self) -> str:
        return (f"discriminator rejection sampling with each class's own discriminator (γ at the {PERCENTILE:g}th "
                f"percentile of F over up to {BURN_IN:,} burn-in candidates)")

    def describe(self) -> dict:
        return {"method": "discriminator", "reference": "Azadi et al., Discriminator Rejection Sampling, ICLR 2019",
                "rule": DRS_RULE, "epsilon": EPSILON, "percentile": PERCENTILE, "burn_in": BURN_IN,
                "discriminator": DISCRIMINATOR_SOURCE, "max_candidates_per_image": MAX_CANDIDATES_PER_IMAGE}


def _checkpoint(run_dir: Path, class_name: str, use_selection: bool) -> _Checkpoint:
    """The class run's checkpoint, or one line saying why DRS cannot use it."""
    needs = f"{class_name}: --filter discriminator needs its run's discriminator"
    paths = RunPaths(run_dir)
    record = read_record(run_dir)
    if record is None:
        raise UserError(f"{needs}, and {paths.record} is missing (no finished epoch, or a run kept with its generator "
                        "only); train the class, or use another --filter")
    weights = paths.checkpoint / record.weights
    if not weights.is_file():
        raise UserError(f"{needs}, and its checkpoint {weights} is missing (a run kept with its generator only, as "
                        "committed runs are); train the class, or use another --filter")
    gan = (run_config(run_dir) or {}).get("gan")
    if not isinstance(gan, dict):
        raise UserError(f"{needs}, and {paths.config} does not record its networks' settings; train the class again")
    sampler = class_sampler(run_dir, use_selection)
    if sampler.selection is not None:
        chosen = sampler.selection["chosen"]
        if chosen["steps"] != record.steps or chosen["latent_std"] != 1:
            raise UserError(f"{class_name}: `cifar-synth select` chose its snapshot at step {chosen['steps']:,} with "
                            f"latent std {chosen['latent_std']:g}, but its discriminator was trained against the final "
                            "generator with standard-normal latents; export with --no-selection")
    if record.generator_sha256 is not None and sha256_file(sampler.path) != record.generator_sha256:
        raise UserError(f"{class_name}: {sampler.path} is not the generator of the checkpoint whose discriminator "
                        f"--filter discriminator uses; {REWRITE_GENERATOR}")
    return _Checkpoint(weights, record.epoch, record.steps, gan)


def _load_discriminator(class_name: str, checkpoint: _Checkpoint):
    """The class run's discriminator from its checkpoint, in float32, and its power vectors with their saved
    values."""
    import keras

    from cifar_synth.config import GANConfig
    from cifar_synth.gan import SpectralConv2D, build_gan
    from cifar_synth.saved_models import load_weights

    # A class run's networks are plain whatever its start; guidance's classifier is not part of the checkpoint.
    config = replace(GANConfig.from_dict(checkpoint.gan), guidance=0.0, precision="float32")
    gan = build_gan(config)
    try:
        load_weights(gan, checkpoint.path)
    except FileNotFoundError:  # its next epoch was recorded meanwhile and this file removed
        raise UserError(f"{class_name}: its checkpoint {checkpoint.path} changed while it was read (is the class "
                        "being trained?); export again when it is done") from None
    discriminator = gan.discriminator
    return discriminator, [(layer.power_vector, keras.ops.convert_to_numpy(layer.power_vector))
                           for layer in discriminator.layers if isinstance(layer, SpectralConv2D)]
