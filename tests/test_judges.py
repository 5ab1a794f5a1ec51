"""The judges' networks: the whitened default CNN, the classic one older reports were made with, the ResNet, and
the precision they compute in."""

import numpy as np
import pytest

from cifar_synth.classifier import (CLASSIC, PATCH_SECOND_MOMENTS, WHITENED, WHITENING_EPSILON, EvaluatorConfig,
                                    build_classifier, make_predictor, train_classifier, whitening_kernel)
from cifar_synth.config import resolve_precision
from cifar_synth.errors import UserError
from cifar_synth.judges import JudgeConfig, build_judge
from test_evaluate import colour_images


def test_the_whitened_judge_trains_and_predicts_on_a_tiny_set():
    config = EvaluatorConfig(widths=(8, 16, 16), epochs=25, batch_size=32, learning_rate=0.4)
    model = train_classifier(colour_images(30, seed=1), config, seed=0)
    test = colour_images(10, seed=2)
    probabilities, features = make_predictor(model)(test.images)
    assert probabilities.shape == (100, 10) and features.shape == (100, 16) and features.dtype == np.float32
    assert (probabilities.argmax(1) == test.labels).mean() >= 0.9
    assert model.get_layer("whitening").trainable is False  # a constant of the real data, never trained


def test_the_classic_budget_builds_the_judge_of_older_reports():
    config = EvaluatorConfig.budget("classic")
    assert (config.architecture, config.widths, config.epochs, config.precision) == (
        CLASSIC, (32, 64, 128, 256), 10, "float32")
    model = build_classifier(config, 10)
    convolutions = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert [layer.filters for layer in convolutions] == [32, 64, 64, 128, 128, 256, 256]
    assert "whitening" not in {layer.name for layer in model.layers}
    assert all(weight.dtype == "float32" for weight in model.weights)
    # A configuration recorded before the architecture field (four widths) reads as the classic network.
    assert EvaluatorConfig(widths=(32, 64, 128, 256)).architecture == CLASSIC
    assert EvaluatorConfig.budget("default") == EvaluatorConfig.budget("classic", budget_name="default")
    fast = EvaluatorConfig.budget("fast")
    assert (fast.architecture, fast.widths, fast.epochs) == (WHITENED, (64, 128, 256), 8)


def test_widths_must_fit_the_architecture():
    with pytest.raises(UserError, match="widths must be 3"):
        EvaluatorConfig(widths=(8, 8, 8, 8), architecture=WHITENED)
    with pytest.raises(UserError, match="unknown architecture"):
        EvaluatorConfig(architecture="vgg")
    with pytest.raises(UserError, match="unknown precision"):
        JudgeConfig(precision="float8")


def test_the_whitening_stem_decorrelates_the_patches_it_was_computed_from():
    moments = np.array(PATCH_SECOND_MOMENTS)
    assert np.allclose(moments, moments.T)
    directions = whitening_kernel().reshape(12, 24)[:, :12]
    whitened = directions.T @ moments @ directions
    assert np.allclose(whitened, np.diag(np.diag(whitened)), atol=1e-4)  # uncorrelated outputs
    eigenvalues = np.linalg.eigvalsh(moments)
    # unit variance for the directions well above epsilon, the faint ones damped
    assert np.allclose(np.diag(whitened), eigenvalues / (eigenvalues + WHITENING_EPSILON), atol=1e-4)


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it_natively():
    assert resolve_precision("auto", gpu=False, cpu_flags={"avx512_bf16"}) == "mixed_bfloat16"
    assert resolve_precision("auto", gpu=False, cpu_flags={"avx2"}) == "float32"
    assert resolve_precision("auto", gpu=True, cpu_flags={"amx_bf16"}) == "float32"
    assert resolve_precision("float32", gpu=False, cpu_flags={"amx_bf16"}) == "float32"
    assert EvaluatorConfig(precision="auto").precision in ("float32", "mixed_bfloat16")  # resolved when made


def test_the_resnet_judge_keeps_its_logits_and_features_in_float32():
    model = build_judge(JudgeConfig(widths=(4, 8, 8), precision="mixed_bfloat16"), 10)
    assert model.output.dtype == "float32" and model.get_layer("features").output.dtype == "float32"
    assert JudgeConfig.budget("classic").precision == "float32"
