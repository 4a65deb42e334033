import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_seq2seq.layers import MaskedMHA, causal_mask


def test_causal_mask_values():
    np.testing.assert_array_equal(
        np.asarray(causal_mask(3, 3)), [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    )
    # Query 0 standing at position 2 of a 4-long cache.
    np.testing.assert_array_equal(np.asarray(causal_mask(1, 4, query_offset=2)), [[1, 1, 1, 0]])


def test_later_positions_do_not_change_earlier_outputs(rng):
    layer = MaskedMHA(num_heads=2)
    inputs = rng.normal(size=(2, 6, 8)).astype("float32")
    changed = inputs.copy()
    changed[:, 4:] = rng.normal(size=(2, 2, 8))
    before, after = np.asarray(layer(inputs)), np.asarray(layer(changed))
    np.testing.assert_allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert np.abs(before[:, 4:] - after[:, 4:]).max() > 1e-3


def test_padded_keys_are_ignored(rng):
    layer = MaskedMHA(num_heads=2)
    inputs = rng.normal(size=(1, 5, 8)).astype("float32")
    padding_mask = np.array([[True, True, False, True, True]])
    changed = inputs.copy()
    changed[:, 2] = rng.normal(size=(8,))
    before = np.asarray(layer(inputs, padding_mask=padding_mask))
    after = np.asarray(layer(changed, padding_mask=padding_mask))
    real = padding_mask[0]
    np.testing.assert_allclose(before[:, real], after[:, real], atol=1e-6)


def test_cached_steps_equal_full_pass(rng):
    layer = MaskedMHA(num_heads=4)
    inputs = rng.normal(size=(3, 7, 16)).astype("float32")
    full = np.asarray(layer(inputs))
    cache = layer.init_cache(3, 10)
    outputs = []
    for position in range(7):
        output, cache = layer(inputs[:, position : position + 1], cache=cache, cache_index=position)
        outputs.append(np.asarray(output))
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)
    keys, values = (np.asarray(part) for part in cache)
    assert keys.shape == values.shape == (3, 4, 10, 4)  # [batch, heads, positions, head_dim]
    assert np.abs(keys[:, :, :7]).min() > 0 and np.abs(values[:, :, :7]).min() > 0
    # Positions never written stay zero.
    np.testing.assert_array_equal(keys[:, :, 7:], 0.0)
    np.testing.assert_array_equal(values[:, :, 7:], 0.0)


def test_cache_accepts_several_new_positions(rng):
    layer = MaskedMHA(num_heads=2)
    inputs = rng.normal(size=(2, 6, 8)).astype("float32")
    full = np.asarray(layer(inputs))
    cache = layer.init_cache(2, 6)
    first, cache = layer(inputs[:, :4], cache=cache, cache_index=0)
    second, cache = layer(inputs[:, 4:], cache=cache, cache_index=4)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=1e-5)


def test_keras_mask_from_embedding_is_used(rng):
    from keras_seq2seq.layers import PositionalEmbedding

    token_ids = keras.Input((None,), dtype="int32")
    embedded = PositionalEmbedding(20, 8, 16)(token_ids)
    model = keras.Model(token_ids, MaskedMHA(num_heads=2)(embedded))
    ids = np.array([[3, 4, 0, 5]])
    embedding, layer = model.layers[1], model.layers[-1]
    explicit = np.asarray(layer(embedding(ids), padding_mask=ids != 0))
    unmasked = np.asarray(layer(embedding(ids), padding_mask=np.ones_like(ids, bool)))
    np.testing.assert_allclose(np.asarray(model(ids)), explicit, atol=1e-6)
    assert np.abs(unmasked[0, 3] - explicit[0, 3]).max() > 1e-4


def test_get_config_round_trip():
    layer = MaskedMHA(num_heads=4, head_dim=3, attention_dropout=0.1, use_bias=False, name="masked")
    clone = MaskedMHA.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


class MaskedMHALayerTest(TestCase):
    def test_keras_layer_harness(self):
        self.run_layer_test(
            MaskedMHA,
            init_kwargs={"num_heads": 2, "attention_dropout": 0.1},
            input_shape=(2, 5, 8),
            expected_output_shape=(2, 5, 8),
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=0,
            expected_num_seed_generators=1,
            supports_masking=True,
        )


@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_cache_shared_by_groups_through_slots_equals_reordered_row_caches(rng, jit_compile):
    """Beam search's cache: 2 groups of 3 rows share one cache, each row finding its earlier
    positions through the slot table; rows are reordered within their group after each step.
    Same outputs and probabilities as one cache per row, gathered at every reorder."""
    if jit_compile is not None and keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function variants: TensorFlow backend only")
    import tensorflow as tf

    groups, group, steps, length = 2, 3, 6, 8
    rows = groups * group
    layer = MaskedMHA(num_heads=2)
    layer.build((None, None, 8))
    inputs = rng.normal(size=(steps, rows, 1, 8)).astype("float32")
    # Each row's new hypothesis comes from a row of its own group.
    origins = [
        (np.arange(groups)[:, None] * group + rng.integers(0, group, size=(groups, group))).reshape(-1)
        for _ in range(steps)
    ]

    def step(x, cache, index, slots=None):
        return layer(x, cache=cache, cache_index=index, cache_slots=slots, return_attention_scores=True)

    shared_step = step
    if jit_compile is not None:
        # Unknown batch sizes while tracing, as in the SavedModel's signatures.
        cache_spec = [tf.TensorSpec([None, 2, group * length, 4])] * 2
        index, slots = tf.TensorSpec([], tf.int32), tf.TensorSpec([None, length], tf.int32)
        signature = [tf.TensorSpec([None, 1, 8]), cache_spec, index, slots]
        shared_step = tf.function(step, jit_compile=jit_compile, input_signature=signature)

    per_row = layer.init_cache(rows, length)
    shared = layer.init_cache(rows, length, group_size=group)
    assert tuple(shared[0].shape) == (groups, 2, length * group, 4)
    slots = np.zeros((rows, length), np.int32)
    own = np.arange(rows) % group
    for position in range(steps):
        expected, per_row, expected_probabilities = step(inputs[position], per_row, position)
        slots[:, position] = own
        got, shared, probabilities = shared_step(inputs[position], list(shared), position, slots)
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5)
        np.testing.assert_allclose(np.asarray(probabilities), np.asarray(expected_probabilities), atol=1e-6)
        per_row = [keras.ops.take(part, origins[position], axis=0) for part in per_row]
        slots = slots[origins[position]]
    # After the reorders, rows hold ancestors from several slots: the table is not trivial.
    assert len(np.unique(slots[:, :steps])) > 1 and not (slots[:, :steps] == own[:, None]).all()


def test_shared_cache_needs_rows_in_whole_groups(rng):
    layer = MaskedMHA(num_heads=2)
    with pytest.raises(ValueError, match="not built"):
        layer.init_cache(6, 4)
    layer.build((None, None, 8))
    with pytest.raises(ValueError, match="batch_size=7 is not a whole number of groups of group_size=3"):
        layer.init_cache(7, 4, group_size=3)
    cache = layer.init_cache(6, 4, group_size=3)
    slots = np.zeros((5, 4), np.int32)
    with pytest.raises(ValueError, match="5 rows"):
        layer(rng.normal(size=(5, 1, 8)).astype("float32"), cache=cache, cache_index=0, cache_slots=slots)
