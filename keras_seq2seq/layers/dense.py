"""A Dense layer applied at every position as one two-dimensional matmul."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class PositionwiseDense(keras.layers.Dense):
    """`keras.layers.Dense` that folds all leading axes into one before the matmul.

    Same arguments, weights and results as `keras.layers.Dense`; a [batch, length, d]
    input becomes one [batch * length, d] matrix product instead of a broadcast batched
    one, which XLA on CPU runs faster, forward and backward (see `benchmarks/`).
    `quantize("int8")` (or the model's) applies as to a Dense.

    Example:

    >>> import numpy as np
    >>> PositionwiseDense(4)(np.zeros((2, 3, 8), "float32")).shape
    (2, 3, 4)
    """

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras quantizes only Dense itself unless told the subclass is safe: this one is,
        # its call reshapes around Dense's own (int8 included).
        super().quantize(mode, type_check=False, config=config)

    def call(self, inputs, training=None):
        if len(inputs.shape) <= 2:
            return super().call(inputs, training=training)
        shape = ops.shape(inputs)
        flat = super().call(ops.reshape(inputs, (-1, shape[-1])), training=training)
        return ops.reshape(flat, (*shape[:-1], self.units))
