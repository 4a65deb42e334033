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


def test_transposed_step_kernel_is_used_for_decoding_steps_only(rng):
    """Inside `transposed_step_kernels`, [batch, 1, d] inputs read the given [units, d] copy; nothing else does."""
    import tensorflow as tf

    from keras_seq2seq.layers.dense import transposed_step_kernels

    layer = PositionwiseDense(3, activation="relu")
    layer.build((None, None, 5))
    layer.set_weights([rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=3).astype("float32")])
    step = rng.normal(size=(4, 1, 5)).astype("float32")
    longer = rng.normal(size=(4, 2, 5)).astype("float32")
    exact = tf.Variable(tf.transpose(layer.kernel))
    doubled = tf.Variable(2.0 * tf.transpose(layer.kernel))
    for jit_compile in (False, True):
        # A new function each call: traced afresh, so it sees the context of the moment.
        run = lambda inputs, jit=jit_compile: tf.function(layer, jit_compile=jit)(inputs)
        plain_step, plain_longer = run(step).numpy(), run(longer).numpy()
        with transposed_step_kernels([(layer, exact)]):
            np.testing.assert_allclose(run(step).numpy(), plain_step, atol=1e-6)
        with transposed_step_kernels([(layer, doubled)]):
            assert np.abs(run(step).numpy() - plain_step).max() > 1e-3  # the copy is what a step reads
            np.testing.assert_array_equal(run(longer).numpy(), plain_longer)  # not a step: the layer's kernel
        np.testing.assert_array_equal(run(step).numpy(), plain_step)  # outside the context: unchanged


def test_narrowing_layers_are_the_feed_forward_outputs():
    from keras_seq2seq.layers.dense import narrowing_layers
    from keras_seq2seq.models import Seq2SeqTransformer

    model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=50, target_vocab_size=60)
    model.build()
    found = [layer for block in model.decoder.blocks for layer in narrowing_layers(block)]
    expected = [block.feed_forward._output_dense for block in model.decoder.blocks]
    assert [id(layer) for layer in found] == [id(layer) for layer in expected]
    assert all(layer.kernel.shape[0] > layer.kernel.shape[1] for layer in found)
