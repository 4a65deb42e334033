"""A Dense layer applied at every position as one two-dimensional matmul."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class PositionwiseDense(keras.layers.Dense):
    """`keras.layers.Dense` that folds all leading axes into one before the matmul.

    Same weights, same results; [batch, length, d] inputs become one [batch * length, d]
    matmul instead of a broadcast batched matmul. Under XLA on CPU the 2-D form runs
    1.3x to 2x faster, forward and backward (measured for the Transformer's shapes).
    """

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        if len(inputs.shape) <= 2:
            return super().call(inputs, training=training)
        flat = super().call(ops.reshape(inputs, (-1, shape[-1])), training=training)
        return ops.reshape(flat, (*shape[:-1], self.units))
