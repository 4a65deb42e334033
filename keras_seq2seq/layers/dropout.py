"""Dropout whose random bits come from a counter-based hash, cheap under XLA on CPU."""

import keras
import tensorflow as tf

_GOLDEN = 0x9E3779B9


def _mix(bits):
    """murmur3's 32-bit finalizer: every input bit flips about half the output bits."""
    bits = tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, 16))
    bits = bits * tf.constant(0x85EBCA6B, tf.uint32)
    bits = tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, 13))
    bits = bits * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, 16))


def hashed_uniform_bits(shape, seed):
    """uint32 tensor of `shape`: a pseudo-random word per element, a pure function of `seed`.

    Element i gets mix(mix(i * golden + seed[0]) ^ seed[1]): a counter-based generator
    made of elementwise integer ops, which XLA fuses into the consumer. Under XLA on
    CPU, TensorFlow's stateless RNG op (Philox) costs about 40x more than this.
    """
    size = tf.reduce_prod(shape)
    counter = tf.bitcast(tf.range(size, dtype=tf.int32), tf.uint32)
    seed = tf.bitcast(tf.cast(seed, tf.int32), tf.uint32)
    bits = _mix(counter * tf.constant(_GOLDEN, tf.uint32) + seed[0])
    bits = _mix(tf.bitwise.bitwise_xor(bits, seed[1]))
    return tf.reshape(bits, shape)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class Dropout(keras.layers.Layer):
    """`keras.layers.Dropout` with hash-generated masks (see `hashed_uniform_bits`).

    In training, each element is zeroed with probability `rate` and the others are
    scaled by 1 / (1 - rate); at inference the input passes unchanged. A new seed is
    drawn from a `keras.random.SeedGenerator` at every call, so masks differ from step
    to step and `keras.utils.set_random_seed` makes runs repeatable.

    Args:
        rate: fraction of the inputs to drop, in [0, 1).
        seed: optional int seed of the layer's seed generator.

    Example:

    >>> import numpy as np
    >>> Dropout(0.5)(np.ones((2, 3), "float32")).shape
    (2, 3)
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got rate={rate!r}")
        self.rate = rate
        self.seed = seed
        self.supports_masking = True
        self.built = True
        if rate > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        bits = hashed_uniform_bits(tf.shape(inputs), self.seed_generator.next())
        keep = bits >= tf.constant(int(self.rate * 2**32), tf.uint32)
        scale = tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
