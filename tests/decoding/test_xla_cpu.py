"""The serving path's speed-ups compute what the model's own layers compute."""

import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq.decoding import DecodingStep, beam_search, greedy_decode
from keras_seq2seq.decoding.xla_cpu import (
    BLOCKED_STEP_ROWS,
    StepWeights,
    XlaCpuStep,
    column_blocks,
    encode_tokens,
    encode_tokens_for_decoding,
    step_dense,
    step_dense_layers,
    step_product,
    token_positions,
)
from keras_seq2seq.layers import PositionwiseDense
from keras_seq2seq.models import Encoder, Seq2SeqTransformer, TransformerConfig


def _op_types(function, *args):
    return {op.type for op in function.get_concrete_function(*args).graph.get_operations()}


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("static_rows", [True, False])
def test_step_product_picks_the_copy_for_the_row_count(rng, jit_compile, static_rows):
    """One row reads the transposed copy, 2 to 64 rows the column blocks, more rows the kernel itself,
    whether the row count is known when tracing or only when running (XLA: at compile time)."""
    assert BLOCKED_STEP_ROWS == (2, 64)
    kernel = rng.normal(size=(5, 7)).astype("float32")
    # Each copy scaled by its own factor, so the output tells which one was read.
    transposed = tf.Variable(2.0 * kernel.T)
    blocks = [tf.Variable(3.0 * block) for block in column_blocks(kernel)]
    signature = None if static_rows else [tf.TensorSpec([None, 5], tf.float32)]
    run = tf.function(
        lambda rows: step_product(rows, tf.constant(kernel), transposed, blocks),
        jit_compile=jit_compile, input_signature=signature,
    )
    for rows, factor in ((1, 2.0), (2, 3.0), (64, 3.0), (65, 1.0)):
        inputs = rng.normal(size=(rows, 5)).astype("float32")
        np.testing.assert_allclose(run(inputs).numpy(), inputs @ (factor * kernel), rtol=1e-5, atol=1e-5)


def test_step_dense_equals_the_layer_and_keeps_its_bias_add_apart_under_xla(rng):
    layer = PositionwiseDense(6, activation="relu")
    layer.build((None, 1, 4))
    layer.set_weights([rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=6).astype("float32")])
    for rows in (1, 3):
        inputs = tf.constant(rng.normal(size=(rows, 1, 4)).astype("float32"))
        compiled = tf.function(lambda x: step_dense(layer, x), jit_compile=True)
        assert "XlaOptimizationBarrier" in _op_types(compiled, inputs)
        assert "XlaOptimizationBarrier" not in _op_types(tf.function(lambda x: step_dense(layer, x)), inputs)
        np.testing.assert_allclose(compiled(inputs).numpy(), np.asarray(layer(inputs)), atol=1e-6)


def test_column_blocks_cut_the_kernel_in_order():
    kernel = np.arange(35, dtype="float32").reshape(5, 7)
    blocks = column_blocks(kernel)
    assert [block.shape for block in blocks] == [(5, 3), (5, 4)]
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), kernel)
    assert [block.shape[1] for block in column_blocks(kernel, 3)] == [2, 2, 3]


def _model(normalize_first=False, tie_embeddings=False):
    model = Seq2SeqTransformer.from_preset(
        "tiny", source_vocab_size=50, target_vocab_size=60, normalize_first=normalize_first,
        tie_embeddings=tie_embeddings,
    )
    model.build()
    return model


def test_step_weights_copy_the_weights_of_the_moment():
    model = _model(tie_embeddings=True)
    weights = StepWeights.from_model(model)
    embeddings = np.asarray(model.decoder.embedding.embeddings)
    np.testing.assert_array_equal(weights.output_kernel.numpy(), embeddings.T)
    for block, transposed, blocks in zip(model.decoder.blocks, weights.transposed, weights.blocks, strict=True):
        layers = step_dense_layers(block)
        # Only the narrowing layer (the feed-forward output) gets a transposed copy.
        assert [copy is not None for copy in transposed] == [False] * 5 + [True]
        np.testing.assert_array_equal(transposed[5].numpy(), np.asarray(layers[5].kernel).T)
        for layer, parts in zip(layers, blocks, strict=True):
            np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts], 1), np.asarray(layer.kernel))
    # A snapshot: changing the weights afterwards leaves the copies as they were.
    model.decoder.embedding.embeddings.assign(embeddings + 1.0)
    np.testing.assert_array_equal(weights.output_kernel.numpy(), embeddings.T)
    assert StepWeights.from_model(_model()).output_kernel is None


@pytest.mark.parametrize("normalize_first, tie_embeddings", [(False, False), (True, True)], ids=["post", "pre_tied"])
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_the_fast_step_equals_the_layers_step(normalize_first, tie_embeddings, jit_compile):
    """Logits and caches of XlaCpuStep equal DecodingStep's, per-row caches and shared (beam) caches,
    for 1, 3 and 70 rows (each row count reads a different copy)."""
    model = _model(normalize_first, tie_embeddings)
    plain, fast = DecodingStep(model), XlaCpuStep(model, StepWeights.from_model(model))
    rng = np.random.default_rng(0)
    for rows in (1, 3, 70):
        source_ids = tf.constant(rng.integers(4, 50, size=(rows, 6)), tf.int32)
        encoded = plain.encode(source_ids)
        tokens = tf.constant(rng.integers(4, 60, size=(rows, 3)), tf.int32)

        def run(step_fn, tokens, rows=rows, encoded=encoded):
            cache = step_fn.init_cache(rows, 4)
            outputs = []
            for position in range(3):
                logits, cache = step_fn(tokens[:, position], tf.constant(position), cache, encoded)
                outputs.append(logits)
            return tf.stack(outputs, 1), cache

        expected, expected_cache = run(plain, tokens)
        got, got_cache = tf.function(lambda t: run(fast, t), jit_compile=jit_compile)(tokens)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)
        for got_part, expected_part in zip(tf.nest.flatten(got_cache), tf.nest.flatten(expected_cache)):
            np.testing.assert_allclose(got_part.numpy(), expected_part.numpy(), atol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_searches_through_the_fast_step_give_the_same_tokens(jit_compile):
    model = _model(normalize_first=True, tie_embeddings=True)
    fast = XlaCpuStep(model, StepWeights.from_model(model))
    source_ids = tf.constant([[5, 6, 7, 8, 0], [9, 10, 0, 0, 0], [11, 12, 13, 14, 15]])
    for search in (
        lambda step_fn, ids: greedy_decode(step_fn, ids, max_output_length=12, suppress_end=True, static_shapes=True),
        lambda step_fn, ids: beam_search(step_fn, ids, beam_size=3, max_output_length=12, static_shapes=True),
    ):
        expected_tokens, expected_scores = search(model, source_ids)
        tokens, scores = tf.function(lambda ids, s=search: s(fast, ids), jit_compile=jit_compile)(source_ids)
        np.testing.assert_array_equal(tokens.numpy(), expected_tokens.numpy())
        np.testing.assert_allclose(scores.numpy(), expected_scores.numpy(), atol=1e-4)


STACK = TransformerConfig(
    num_layers=2, d_model=16, num_heads=2, ff_dim=32, dropout=0.1, max_length=20, source_vocab_size=30
)


@pytest.mark.parametrize("normalize_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_encode_tokens_equals_the_padded_encoder_at_real_tokens(normalize_first, jit_compile):
    """The encoder run on real tokens only gives the padded encoder's output at each of them."""
    encoder = Encoder(STACK.replace(normalize_first=normalize_first))
    ids = np.array([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [9, 10, 11, 12, 13]])
    expected, mask = encoder(ids)
    positions = tf.cast(tf.where(ids != 0), tf.int32)
    tokens, tokens_mask = tf.function(lambda i, p: encode_tokens(encoder, i, p), jit_compile=jit_compile)(
        ids, positions
    )
    np.testing.assert_array_equal(np.asarray(tokens_mask), np.asarray(mask))
    assert tokens.shape == (9, 16)
    np.testing.assert_allclose(tokens.numpy(), tf.gather_nd(expected, positions).numpy(), atol=1e-5)
    # Tokens listed in another order, some twice, with a padding position: each comes out in its place.
    shuffled = tf.concat([tf.gather(positions, [8, 0, 3, 3, 7, 6, 5, 4, 2, 1]), [[1, 4]]], axis=0)
    again, _ = encode_tokens(encoder, ids, shuffled)
    np.testing.assert_allclose(again.numpy()[:10], tf.gather_nd(expected, shuffled[:10]).numpy(), atol=1e-5)


def test_encoding_real_tokens_only_gives_the_same_keys_and_values():
    model = _model(normalize_first=True)
    source_ids = tf.constant([[5, 6, 7, 0, 0, 0], [8, 0, 0, 0, 0, 0], [9, 10, 11, 12, 13, 14]])
    expected = DecodingStep(model).encode(source_ids)
    for bucketed in (False, True):
        got = encode_tokens_for_decoding(model, source_ids, token_positions(source_ids, bucketed=bucketed))
        np.testing.assert_array_equal(got.source_mask.numpy(), expected.source_mask.numpy())
        mask = expected.source_mask.numpy()[:, None, :, None]
        for got_part, expected_part in zip(tf.nest.flatten(got.cross_key_values),
                                           tf.nest.flatten(expected.cross_key_values)):
            # At padding positions the packed encoder leaves zeros, which the source mask hides.
            np.testing.assert_allclose(got_part.numpy() * mask, expected_part.numpy() * mask, atol=1e-5)
