import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_seq2seq.layers import FeedForward


def test_computes_two_dense_layers_with_relu(rng):
    layer = FeedForward(ff_dim=5)
    inputs = rng.normal(size=(2, 3, 4)).astype("float32")
    output = np.asarray(layer(inputs))
    hidden_kernel, hidden_bias, output_kernel, output_bias = layer.get_weights()
    expected = np.maximum(inputs @ hidden_kernel + hidden_bias, 0) @ output_kernel + output_bias
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_positions_are_independent(rng):
    layer = FeedForward(ff_dim=8)
    inputs = rng.normal(size=(1, 4, 4)).astype("float32")
    changed = inputs.copy()
    changed[:, 3] += 1.0
    np.testing.assert_allclose(np.asarray(layer(inputs))[:, :3], np.asarray(layer(changed))[:, :3], atol=1e-6)


@pytest.mark.parametrize("kwargs, name", [({"ff_dim": 0}, "ff_dim"), ({"ff_dim": 4, "dropout": -0.1}, "dropout")])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FeedForward(**kwargs)


def test_get_config_round_trip():
    layer = FeedForward(ff_dim=7, activation="gelu", dropout=0.2)
    assert FeedForward.from_config(layer.get_config()).get_config() == layer.get_config()


class FeedForwardLayerTest(TestCase):
    def test_keras_layer_harness(self):
        self.run_layer_test(
            FeedForward,
            init_kwargs={"ff_dim": 6, "dropout": 0.1},
            input_shape=(2, 3, 4),
            expected_output_shape=(2, 3, 4),
            expected_num_trainable_weights=4,
            expected_num_seed_generators=1,
            supports_masking=True,
        )
