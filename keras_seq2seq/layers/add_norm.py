"""Residual connection followed by layer normalization."""

import keras

from keras_seq2seq.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class AddNorm(keras.layers.Layer):
    """`LayerNorm(residual + Dropout(sublayer_output))`, the post-norm arrangement.

    Args:
        dropout: dropout rate applied to the sublayer output before the addition.
        epsilon: layer normalization epsilon.

    Call arguments:
        residual: the sublayer's input, [batch, length, d_model].
        sublayer_output: the sublayer's output, same shape.

    Example:

    >>> import numpy as np
    >>> add_norm = AddNorm()
    >>> add_norm(np.ones((1, 2, 4), "float32"), np.zeros((1, 2, 4), "float32")).shape
    (1, 2, 4)

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (section 5.4).
    """

    def __init__(self, dropout=0.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        self.dropout = dropout
        self.epsilon = epsilon
        self.supports_masking = True

    def build(self, residual_shape, sublayer_output_shape=None):
        self._dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        self._layer_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self._layer_norm.build(residual_shape)
        self.built = True

    def call(self, residual, sublayer_output, training=None):
        return self._layer_norm(residual + self._dropout(sublayer_output, training=training))

    def compute_output_shape(self, residual_shape, sublayer_output_shape=None):
        return residual_shape

    def compute_mask(self, residual, sublayer_output=None, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout, "epsilon": self.epsilon})
        return config
