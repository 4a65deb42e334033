import keras
import numpy as np
import pytest

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


def _op_types(function, *args):
    return {op.type for op in function.get_concrete_function(*args).graph.get_operations()}


def test_decoding_step_keeps_its_bias_add_apart_under_xla_only(rng):
    """[batch, 1, d] under XLA: same values and gradients as keras Dense, through an optimization barrier."""
    import tensorflow as tf

    ours = PositionwiseDense(6, activation="relu")
    reference = keras.layers.Dense(6, activation="relu")
    ours.build((None, 1, 4))
    reference.build((None, 1, 4))
    ours.set_weights([rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=6).astype("float32")])
    reference.set_weights(ours.get_weights())

    def value_and_gradients(layer):
        def run(inputs):
            with tf.GradientTape() as tape:
                output = layer(inputs)
                loss = tf.reduce_sum(output * tf.range(6, dtype=tf.float32))
            return output, tape.gradient(loss, layer.trainable_weights)

        return run

    for batch in (1, 3):
        inputs = tf.constant(rng.normal(size=(batch, 1, 4)).astype("float32"))
        compiled = tf.function(value_and_gradients(ours), jit_compile=True)
        assert "XlaOptimizationBarrier" in _op_types(compiled, inputs)
        assert "XlaOptimizationBarrier" not in _op_types(tf.function(value_and_gradients(ours)), inputs)
        output, gradients = compiled(inputs)
        expected, expected_gradients = value_and_gradients(reference)(inputs)
        np.testing.assert_allclose(output.numpy(), expected.numpy(), atol=1e-6)
        for gradient, expected_gradient in zip(gradients, expected_gradients):
            np.testing.assert_allclose(gradient.numpy(), expected_gradient.numpy(), atol=1e-5)
    # Longer inputs (training, encoding) take Dense's own path.
    longer = tf.constant(rng.normal(size=(2, 3, 4)).astype("float32"))
    assert "XlaOptimizationBarrier" not in _op_types(tf.function(ours, jit_compile=True), longer)


def test_step_kernels_are_read_by_decoding_steps_only(rng):
    """Inside `step_kernels`, [batch, 1, d] inputs read the given copies; nothing else does."""
    import tensorflow as tf

    from keras_seq2seq.layers.dense import StepKernels, column_blocks, step_kernels

    layer = PositionwiseDense(3, activation="relu")
    layer.build((None, None, 5))
    layer.set_weights([rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=3).astype("float32")])
    steps = {rows: rng.normal(size=(rows, 1, 5)).astype("float32") for rows in (1, 4)}
    longer = rng.normal(size=(4, 2, 5)).astype("float32")
    exact = StepKernels(tf.Variable(tf.transpose(layer.kernel)), tuple(map(tf.Variable, column_blocks(layer.kernel))))
    doubled = StepKernels(
        tf.Variable(2.0 * tf.transpose(layer.kernel)), tuple(tf.Variable(2.0 * b) for b in column_blocks(layer.kernel))
    )
    for jit_compile in (False, True):
        # A new function each call: traced afresh, so it sees the context of the moment.
        run = lambda inputs, jit=jit_compile: tf.function(layer, jit_compile=jit)(inputs)
        plain_longer = run(longer).numpy()
        for step in steps.values():
            plain_step = run(step).numpy()
            with step_kernels([(layer, exact)]):
                np.testing.assert_allclose(run(step).numpy(), plain_step, atol=1e-6)
            with step_kernels([(layer, doubled)]):
                assert np.abs(run(step).numpy() - plain_step).max() > 1e-3  # the copy is what a step reads
                np.testing.assert_array_equal(run(longer).numpy(), plain_longer)  # not a step: the layer's kernel
            np.testing.assert_array_equal(run(step).numpy(), plain_step)  # outside the context: unchanged


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("static_rows", [True, False])
def test_step_kernels_pick_the_copy_for_the_row_count(rng, jit_compile, static_rows):
    """One row reads the transposed copy, 2 to 64 rows the column blocks, more rows the kernel itself,
    whether the row count is known when tracing or only when running (XLA: at compile time)."""
    import tensorflow as tf

    from keras_seq2seq.layers.dense import BLOCKED_STEP_ROWS, StepKernels, column_blocks, step_kernels

    assert BLOCKED_STEP_ROWS == (2, 64)
    layer = PositionwiseDense(7)
    layer.build((None, None, 5))
    kernel = rng.normal(size=(5, 7)).astype("float32")
    bias = rng.normal(size=7).astype("float32")
    layer.set_weights([kernel, bias])
    # Each copy scaled by its own factor, so the output tells which one was read.
    marked = StepKernels(
        tf.Variable(2.0 * kernel.T), tuple(tf.Variable(3.0 * block) for block in column_blocks(kernel))
    )
    signature = None if static_rows else [tf.TensorSpec([None, 1, 5], tf.float32)]
    for rows, factor in ((1, 2.0), (2, 3.0), (64, 3.0), (65, 1.0)):
        step = rng.normal(size=(rows, 1, 5)).astype("float32")
        with step_kernels([(layer, marked)]):
            got = tf.function(layer, jit_compile=jit_compile, input_signature=signature)(step).numpy()
        np.testing.assert_allclose(got[:, 0], step[:, 0] @ (factor * kernel) + bias, rtol=1e-5, atol=1e-5)


def test_column_blocks_cut_the_kernel_in_order():
    from keras_seq2seq.layers.dense import column_blocks

    kernel = np.arange(35, dtype="float32").reshape(5, 7)
    blocks = column_blocks(kernel)
    assert [block.shape for block in blocks] == [(5, 3), (5, 4)]
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), kernel)
    assert [block.shape[1] for block in column_blocks(kernel, 3)] == [2, 2, 3]


def test_narrowing_layers_are_the_feed_forward_outputs():
    from keras_seq2seq.layers.dense import narrowing_layers
    from keras_seq2seq.models import Seq2SeqTransformer

    model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=50, target_vocab_size=60)
    model.build()
    found = [layer for block in model.decoder.blocks for layer in narrowing_layers(block)]
    expected = [block.feed_forward._output_dense for block in model.decoder.blocks]
    assert [id(layer) for layer in found] == [id(layer) for layer in expected]
    assert all(layer.kernel.shape[0] > layer.kernel.shape[1] for layer in found)
