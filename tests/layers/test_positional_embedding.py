import math

import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_seq2seq.layers import PositionalEmbedding, sinusoidal_positions


def test_sinusoid_values():
    table = np.asarray(sinusoidal_positions(np.arange(3), 4))
    # Half 0 = sines, half 1 = cosines; frequencies 1 and 1/10000.
    expected = np.array(
        [[math.sin(p), math.sin(p / 10000), math.cos(p), math.cos(p / 10000)] for p in range(3)]
    )
    np.testing.assert_allclose(table, expected, atol=1e-6)


def test_scaled_embedding_plus_positions():
    layer = PositionalEmbedding(vocab_size=10, d_model=4, max_length=8)
    output = np.asarray(layer(np.array([[5, 6]])))
    embeddings = np.asarray(layer.embeddings)
    expected = embeddings[[5, 6]] * 2.0 + np.asarray(sinusoidal_positions(np.arange(2), 4))
    np.testing.assert_allclose(output[0], expected, atol=1e-6)


def test_start_index_shifts_positions():
    layer = PositionalEmbedding(vocab_size=10, d_model=6, max_length=8)
    ids = np.array([[3, 4, 5]])
    full = np.asarray(layer(ids))
    np.testing.assert_allclose(np.asarray(layer(ids[:, 2:], start_index=2))[0, 0], full[0, 2], atol=1e-6)


def test_zero_is_padding_mask():
    layer = PositionalEmbedding(vocab_size=10, d_model=4)
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(np.array([[1, 0, 2]]))), [[True, False, True]])


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="max_length=4"):
        PositionalEmbedding(vocab_size=10, d_model=4, max_length=4)(np.ones((1, 5), "int32"))


@pytest.mark.parametrize("name", ["vocab_size", "d_model", "max_length"])
def test_bad_sizes_are_named(name):
    kwargs = {"vocab_size": 10, "d_model": 4, "max_length": 8, name: 0}
    with pytest.raises(ValueError, match=f"{name}=0"):
        PositionalEmbedding(**kwargs)


def test_get_config_round_trip():
    layer = PositionalEmbedding(vocab_size=11, d_model=6, max_length=9)
    assert PositionalEmbedding.from_config(layer.get_config()).get_config() == layer.get_config()


class PositionalEmbeddingLayerTest(TestCase):
    def test_keras_layer_harness(self):
        self.run_layer_test(
            PositionalEmbedding,
            init_kwargs={"vocab_size": 10, "d_model": 4, "max_length": 8},
            input_data=np.array([[1, 2, 0], [3, 0, 0]]),
            expected_output_shape=(2, 3, 4),
            expected_num_trainable_weights=1,
            run_training_check=False,
            run_mixed_precision_check=False,
        )
