"""FusedAdam: Keras' Adam, its update of every variable one XLA-compiled call."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_seq2seq.models import Seq2SeqTransformer
from keras_seq2seq.objectives import MaskedCrossEntropy, TransformerSchedule
from keras_seq2seq.optimizers import FusedAdam

HELPER = Path(__file__).resolve().parent / "helpers" / "fused_adam_mirrored.py"


def _train(optimizer, steps=5):
    """The tiny model's initial weights, and the model after `steps` batches with `optimizer`."""
    keras.utils.set_random_seed(1)
    model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=100, target_vocab_size=100)
    model.compile(optimizer=optimizer, loss=MaskedCrossEntropy(0.1))
    model.build()
    initial = [weight.numpy() for weight in model.weights]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        source, target_in, labels = (rng.integers(4, 100, size=(8, 10)).astype("int32") for _ in range(3))
        model.train_on_batch((source, target_in), labels)
    return initial, model


@pytest.fixture(scope="module")
def keras_adam():
    return _train(keras.optimizers.Adam(TransformerSchedule(32, 10), 0.9, 0.98, 1e-9))


def test_fused_update_trains_like_keras_adam(keras_adam):
    initial, reference = keras_adam
    _, fused = _train(FusedAdam(TransformerSchedule(32, 10), 0.9, 0.98, 1e-9))
    # The fused function ran, traced once for the whole training.
    assert fused.optimizer._fused_update.experimental_get_tracing_count() == 1
    assert int(fused.optimizer.iterations.numpy()) == 5
    assert max(float(np.abs(a - b.numpy()).max()) for a, b in zip(initial, reference.weights)) > 1e-3
    for ours, theirs in zip(fused.weights, reference.weights):
        keep = _with_gradient(ours)
        np.testing.assert_allclose(ours.numpy()[keep], theirs.numpy()[keep], atol=1e-5, err_msg=ours.path)
    for ours, theirs in zip(fused.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-5, err_msg=ours.path)


def test_fuse_update_false_is_keras_adam_exactly(keras_adam):
    _, reference = keras_adam
    _, unfused = _train(FusedAdam(TransformerSchedule(32, 10), 0.9, 0.98, 1e-9, fuse_update=False))
    assert unfused.optimizer._fused_update is None
    for ours, theirs in zip(unfused.weights, reference.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def _with_gradient(weight):
    """The entries of `weight` that get a gradient.

    The key projection's bias gets none: softmax ignores a shift shared by every
    key. Its gradient is float noise, which Adam (dividing by its root mean square)
    turns into steps as large as the learning rate, differently for any change in
    rounding; those entries are left out.
    """
    keep = np.ones(weight.shape, bool)
    if weight.path.endswith("query_key_value/bias"):
        keep[weight.shape[0] // 3 : 2 * weight.shape[0] // 3] = False
    elif weight.path.endswith("key_value/bias"):
        keep[: weight.shape[0] // 2] = False
    return keep


def test_config_round_trip():
    optimizer = FusedAdam(2e-4, beta_2=0.98, epsilon=1e-9, fuse_update=False)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, FusedAdam) and restored.fuse_update is False
    assert restored.beta_2 == 0.98 and restored.epsilon == 1e-9
    assert float(restored.learning_rate) == np.float32(2e-4)


@pytest.mark.slow
def test_mirrored_strategy_falls_back_to_keras_update():
    """Variables mirrored over two logical devices: Keras' own per-variable update, same weights."""
    result = subprocess.run(
        [sys.executable, str(HELPER)], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["fell_back"]
    assert report["difference"] == 0.0
