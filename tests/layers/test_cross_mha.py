import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_seq2seq.layers import CrossMHA


def _copy_into_keras_mha(layer, num_heads, head_dim, model_dim):
    """A keras.layers.MultiHeadAttention holding `layer`'s weights."""
    reference = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=head_dim)
    query = np.zeros((1, 1, model_dim), "float32")
    reference(query, query)
    query_kernel, query_bias = layer._query_dense.get_weights()
    key_value_kernel, key_value_bias = layer._key_value_dense.get_weights()
    output_kernel, output_bias = layer._output_dense.get_weights()
    inner = num_heads * head_dim
    heads = (num_heads, head_dim)
    reference.set_weights(
        [
            query_kernel.reshape(model_dim, *heads),
            query_bias.reshape(heads),
            key_value_kernel[:, :inner].reshape(model_dim, *heads),
            key_value_bias[:inner].reshape(heads),
            key_value_kernel[:, inner:].reshape(model_dim, *heads),
            key_value_bias[inner:].reshape(heads),
            output_kernel.reshape(*heads, model_dim),
            output_bias,
        ]
    )
    return reference


def test_matches_keras_multi_head_attention(rng):
    layer = CrossMHA(num_heads=4)
    query = rng.normal(size=(2, 5, 16)).astype("float32")
    encoder_output = rng.normal(size=(2, 7, 16)).astype("float32")
    padding_mask = np.ones((2, 7), bool)
    padding_mask[1, 4:] = False
    ours = np.asarray(layer(query, encoder_output, padding_mask))
    reference = _copy_into_keras_mha(layer, 4, 4, 16)
    attention_mask = np.broadcast_to(padding_mask[:, None, :], (2, 5, 7))
    theirs = np.asarray(reference(query, encoder_output, attention_mask=attention_mask))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_padded_source_positions_are_ignored(rng):
    layer = CrossMHA(num_heads=2)
    query = rng.normal(size=(1, 3, 8)).astype("float32")
    encoder_output = rng.normal(size=(1, 6, 8)).astype("float32")
    padding_mask = np.array([[True, True, True, True, False, False]])
    changed = encoder_output.copy()
    changed[:, 4:] = 100 * rng.normal(size=(2, 8))
    np.testing.assert_allclose(
        np.asarray(layer(query, encoder_output, padding_mask)),
        np.asarray(layer(query, changed, padding_mask)),
        atol=1e-6,
    )


def test_precomputed_key_value_gives_same_output(rng):
    layer = CrossMHA(num_heads=2)
    query = rng.normal(size=(2, 3, 8)).astype("float32")
    encoder_output = rng.normal(size=(2, 4, 8)).astype("float32")
    key_value = layer.compute_key_value(encoder_output)
    keys, values = key_value
    assert tuple(keys.shape) == tuple(values.shape) == (2, 2, 4, 4)  # [batch, heads, source, head_dim]
    np.testing.assert_allclose(
        np.asarray(layer(query, key_value=key_value)),
        np.asarray(layer(query, encoder_output)),
        atol=1e-6,
    )


def test_attention_probabilities_sum_to_one_over_real_positions(rng):
    layer = CrossMHA(num_heads=2)
    query = rng.normal(size=(1, 2, 8)).astype("float32")
    encoder_output = rng.normal(size=(1, 4, 8)).astype("float32")
    _, probabilities = layer(
        query, encoder_output, np.array([[1, 1, 1, 0]], bool), return_attention_scores=True
    )
    probabilities = np.asarray(probabilities)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities[..., 3], 0.0)


def test_different_key_value_width(rng):
    layer = CrossMHA(num_heads=2, key_value_dim=6)
    output = layer(rng.normal(size=(1, 2, 8)).astype("float32"), rng.normal(size=(1, 3, 6)).astype("float32"))
    assert tuple(output.shape) == (1, 2, 8)


def test_needs_encoder_output_or_key_value():
    with pytest.raises(ValueError, match="encoder_output or key_value"):
        CrossMHA(num_heads=2)(np.zeros((1, 2, 8), "float32"))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num_heads": 0}, "num_heads"), ({"num_heads": 2, "attention_dropout": 1.0}, "attention_dropout"),
     ({"num_heads": 2, "key_value_dim": -1}, "key_value_dim")],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CrossMHA(**kwargs)


def test_get_config_round_trip():
    layer = CrossMHA(num_heads=4, key_value_dim=12, attention_dropout=0.2)
    assert CrossMHA.from_config(layer.get_config()).get_config() == layer.get_config()


class CrossMHALayerTest(TestCase):
    def test_keras_layer_harness(self):
        self.run_layer_test(
            CrossMHA,
            init_kwargs={"num_heads": 2},
            input_shape={"query_shape": (2, 3, 8), "encoder_output_shape": (2, 5, 8)},
            expected_output_shape=(2, 3, 8),
            expected_num_trainable_weights=6,
            expected_num_non_trainable_weights=0,
            # The harness's training check feeds multi-input layers a dict as one argument.
            run_training_check=False,
        )


@pytest.mark.tensorflow_only
def test_same_attention_with_and_without_xla(rng):
    """Eager and XLA-compiled: the same outputs and probabilities."""
    import tensorflow as tf

    layer = CrossMHA(num_heads=2)
    query = rng.normal(size=(2, 3, 8)).astype("float32")
    encoder_output = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    run = lambda q, e, m: layer(q, e, m, return_attention_scores=True)
    eager = run(query, encoder_output, mask)
    compiled = tf.function(run, jit_compile=True)(query, encoder_output, mask)
    for expected, got in zip(eager, compiled):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_sources_shared_by_groups_of_query_rows(rng, jit_compile):
    """Key/value of 2 sources for 3 query rows each (a beam search's beams): the same outputs
    and probabilities as with each source's key/value repeated for its rows."""
    import tensorflow as tf

    layer = CrossMHA(num_heads=2)
    query = rng.normal(size=(6, 2, 8)).astype("float32")
    encoder_output = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    shared = layer.compute_key_value(encoder_output)
    repeated = [tf.repeat(part, 3, axis=0) for part in shared]
    run = lambda q, kv, m: layer(q, key_value=kv, encoder_padding_mask=m, return_attention_scores=True)
    if jit_compile is not None:
        # Unknown batch sizes while tracing: the rows are told apart at run time.
        unknown = [
            tf.TensorSpec([None, None, 8]),
            [tf.TensorSpec([None, 2, None, 4])] * 2,
            tf.TensorSpec([None, None], tf.bool),
        ]
        run = tf.function(run, jit_compile=jit_compile, input_signature=unknown)
    expected = run(query, repeated, np.repeat(mask, 3, axis=0))
    got = run(query, list(shared), mask)
    assert tuple(got[1].shape) == (6, 2, 2, 5)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(np.asarray(have), np.asarray(want), atol=1e-5)
    # Each row attends to its own source only: source 0's padded positions get nothing.
    assert np.asarray(got[1])[:3, :, :, 3:].max() == 0.0
