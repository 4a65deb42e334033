import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_seq2seq.layers import AddNorm


def test_adds_then_normalizes(rng):
    residual = rng.normal(size=(2, 3, 6)).astype("float32")
    sublayer_output = rng.normal(size=(2, 3, 6)).astype("float32")
    total = residual + sublayer_output
    expected = (total - total.mean(-1, keepdims=True)) / np.sqrt(total.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(AddNorm()(residual, sublayer_output)), expected, atol=1e-5)


def test_dropout_only_in_training(rng):
    layer = AddNorm(dropout=0.5)
    residual = np.zeros((1, 4, 64), "float32")
    sublayer_output = rng.normal(size=(1, 4, 64)).astype("float32")
    inference = np.asarray(layer(residual, sublayer_output, training=False))
    training = np.asarray(layer(residual, sublayer_output, training=True))
    assert np.abs(inference - training).max() > 1e-3


def test_inference_output_equals_no_dropout_exactly(rng):
    residual = rng.normal(size=(2, 5, 8)).astype("float32")
    sublayer_output = rng.normal(size=(2, 5, 8)).astype("float32")
    with_dropout, without = AddNorm(dropout=0.4), AddNorm(dropout=0.0)
    with_dropout(residual, sublayer_output)
    without(residual, sublayer_output)
    gamma, beta = rng.normal(size=(2, 8)).astype("float32")
    for layer in (with_dropout, without):
        layer.set_weights([gamma, beta])
    np.testing.assert_array_equal(
        np.asarray(with_dropout(residual, sublayer_output, training=False)),
        np.asarray(without(residual, sublayer_output)),
    )


def test_bad_dropout_is_named():
    with pytest.raises(ValueError, match="dropout=1.5"):
        AddNorm(dropout=1.5)


def test_get_config_round_trip():
    layer = AddNorm(dropout=0.3, epsilon=1e-5)
    assert AddNorm.from_config(layer.get_config()).get_config() == layer.get_config()


class AddNormLayerTest(TestCase):
    def test_keras_layer_harness(self):
        self.run_layer_test(
            AddNorm,
            init_kwargs={"dropout": 0.1},
            input_shape={"residual_shape": (2, 3, 4), "sublayer_output_shape": (2, 3, 4)},
            expected_output_shape=(2, 3, 4),
            expected_num_trainable_weights=2,
            run_training_check=False,
        )
