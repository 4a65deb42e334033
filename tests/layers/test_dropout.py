import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq.layers import Dropout
from keras_seq2seq.layers.dropout import hashed_uniform_bits


def _masks(layer, shape, calls):
    ones = np.ones(shape, "float32")
    return [np.asarray(layer(ones, training=True)) == 0 for _ in range(calls)]


def test_inference_passes_inputs_unchanged(rng):
    inputs = rng.normal(size=(3, 5, 8)).astype("float32")
    np.testing.assert_array_equal(np.asarray(Dropout(0.3)(inputs)), inputs)
    np.testing.assert_array_equal(np.asarray(Dropout(0.0)(inputs, training=True)), inputs)


def test_drops_the_rate_and_rescales_the_rest():
    layer = Dropout(0.1, seed=3)
    output = np.asarray(layer(np.ones((64, 16, 256), "float32"), training=True))
    dropped = output == 0
    assert abs(dropped.mean() - 0.1) < 0.003  # 262,144 draws: 5 standard deviations
    np.testing.assert_allclose(output[~dropped], 1 / 0.9, rtol=1e-6)
    # Neighbouring elements are independent: both dropped about rate**2 of the time.
    both = (dropped[..., 1:] & dropped[..., :-1]).mean()
    assert abs(both - 0.01) < 0.002


def test_masks_change_every_call_and_repeat_under_a_seed():
    keras.utils.set_random_seed(5)
    first = _masks(Dropout(0.5), (4, 100), 2)
    assert (first[0] != first[1]).mean() > 0.4
    keras.utils.set_random_seed(5)
    again = _masks(Dropout(0.5), (4, 100), 2)
    for one, other in zip(first, again):
        np.testing.assert_array_equal(one, other)


@pytest.mark.tensorflow_only
def test_bits_are_the_same_with_and_without_xla():
    shape, seed = tf.constant([3, 7, 5]), tf.constant([11, -4])
    plain = tf.function(hashed_uniform_bits)(shape, seed)
    compiled = tf.function(hashed_uniform_bits, jit_compile=True)(shape, seed)
    np.testing.assert_array_equal(plain.numpy(), compiled.numpy())
    other_seed = hashed_uniform_bits(shape, tf.constant([11, -3]))
    assert (plain.numpy() != other_seed.numpy()).mean() > 0.99


def test_bad_rate_is_named():
    with pytest.raises(ValueError, match="rate=1.0"):
        Dropout(1.0)


def _numpy_hash(size, seed):
    """The generator written out in numpy (uint32 arithmetic wraps), as the reference."""
    def mix(bits):
        bits ^= bits >> np.uint32(16)
        bits *= np.uint32(0x85EBCA6B)
        bits ^= bits >> np.uint32(13)
        bits *= np.uint32(0xC2B2AE35)
        return bits ^ (bits >> np.uint32(16))

    seed = np.asarray(seed, np.int64).astype(np.int32).astype(np.uint32)
    with np.errstate(over="ignore"):
        bits = mix(np.arange(size, dtype=np.uint32) * np.uint32(0x9E3779B9) + seed[0])
        return mix(bits ^ seed[1])


@pytest.mark.parametrize("seed", [(5, 11), (-7, 2**31 + 3)])
def test_hashed_bits_equal_the_numpy_reference_exactly(seed):
    """Masks are a pure function of (shape, seed), the same on every backend and before/after a rewrite."""
    bits = np.asarray(hashed_uniform_bits((3, 4, 5), np.asarray(seed, np.int64)))
    assert bits.dtype == np.uint32
    np.testing.assert_array_equal(bits.reshape(-1), _numpy_hash(60, seed))
