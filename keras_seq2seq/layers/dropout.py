"""Dropout whose random bits come from a counter-based hash, cheap under XLA on CPU."""

import math

import keras
from keras import ops

_GOLDEN = 0x9E3779B9


def _uint32(value):
    return ops.convert_to_tensor(value, "uint32")


def _mix(bits):
    """murmur3's 32-bit finalizer: every input bit flips about half the output bits."""
    bits = ops.bitwise_xor(bits, ops.right_shift(bits, _uint32(16)))
    bits = ops.multiply(bits, _uint32(0x85EBCA6B))
    bits = ops.bitwise_xor(bits, ops.right_shift(bits, _uint32(13)))
    bits = ops.multiply(bits, _uint32(0xC2B2AE35))
    return ops.bitwise_xor(bits, ops.right_shift(bits, _uint32(16)))


def hashed_uniform_bits(shape, seed):
    """uint32 tensor of `shape`: a pseudo-random word per element, a pure function of `seed`.

    Element i gets mix(mix(i * golden + seed[0]) ^ seed[1]): a counter-based generator
    made of elementwise integer ops (uint32 arithmetic wraps modulo 2**32 on every
    backend), which XLA fuses into the consumer. Under XLA on CPU, TensorFlow's
    stateless random op (Philox) costs about 40x more than this.
    """
    if isinstance(shape, (tuple, list)) and all(isinstance(dim, int) for dim in shape):
        size = math.prod(shape)  # static (always on JAX, whose arange needs a concrete size)
    else:
        size = ops.prod(ops.convert_to_tensor(shape, "int32"))
    counter = ops.cast(ops.arange(size, dtype="int32"), "uint32")
    seed = ops.cast(ops.cast(seed, "int32"), "uint32")
    bits = _mix(ops.add(ops.multiply(counter, _uint32(_GOLDEN)), seed[0]))
    bits = _mix(ops.bitwise_xor(bits, seed[1]))
    return ops.reshape(bits, shape)


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
        bits = hashed_uniform_bits(ops.shape(inputs), self.seed_generator.next())
        keep = ops.greater_equal(bits, _uint32(int(self.rate * 2**32)))
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
