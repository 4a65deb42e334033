import keras
import numpy as np

from keras_seq2seq.layers import PositionwiseDense


def test_same_outputs_as_keras_dense_for_any_rank(rng):
    ours = PositionwiseDense(6, activation="relu")
    reference = keras.layers.Dense(6, activation="relu")
    for shape in ((5, 4), (2, 3, 4), (2, 2, 3, 4)):
        inputs = rng.normal(size=shape).astype("float32")
        if not ours.built:
            ours.build(inputs.shape)
            reference.build(inputs.shape)
            reference.set_weights(ours.get_weights())
        output = np.asarray(ours(inputs))
        assert output.shape == shape[:-1] + (6,)
        np.testing.assert_allclose(output, np.asarray(reference(inputs)), atol=1e-6)


def test_config_round_trip():
    layer = PositionwiseDense(3, use_bias=False, name="projection")
    clone = PositionwiseDense.from_config(layer.get_config())
    assert (clone.units, clone.use_bias, clone.name) == (3, False, "projection")


def test_length_one_sequences_are_plain_dense(rng):
    """No decoding-step mode: a [batch, 1, d] input is computed like any other length."""
    ours = PositionwiseDense(6)
    reference = keras.layers.Dense(6)
    inputs = rng.normal(size=(3, 1, 4)).astype("float32")
    ours.build(inputs.shape)
    reference.build(inputs.shape)
    reference.set_weights(ours.get_weights())
    np.testing.assert_allclose(np.asarray(ours(inputs)), np.asarray(reference(inputs)), atol=1e-6)
