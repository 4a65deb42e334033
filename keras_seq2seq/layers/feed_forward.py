"""Position-wise feed-forward block."""

import keras

from keras_seq2seq.layers.dense import PositionwiseDense
from keras_seq2seq.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class FeedForward(keras.layers.Layer):
    """`Dense(d_model)(Dropout(activation(Dense(ff_dim)(x))))`, applied at each position.

    Args:
        ff_dim: size of the hidden layer.
        activation: activation of the hidden layer.
        dropout: dropout rate on the hidden activations.
        kernel_initializer: initializer of both kernels.

    Example:

    >>> import numpy as np
    >>> FeedForward(ff_dim=16)(np.zeros((1, 3, 4), "float32")).shape
    (1, 3, 4)

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (section 3.3).
    """

    def __init__(
        self, ff_dim, activation="relu", dropout=0.0, kernel_initializer="glorot_uniform", **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(ff_dim, int) or ff_dim <= 0:
            raise ValueError(f"ff_dim must be a positive integer, got ff_dim={ff_dim!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout!r}")
        self.ff_dim = ff_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        def dense(units, activation, name):
            return PositionwiseDense(
                units,
                activation=activation,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self._hidden_dense = dense(self.ff_dim, self.activation, "hidden")
        self._hidden_dense.build(inputs_shape)
        self._dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        self._output_dense = dense(inputs_shape[-1], None, "output")
        self._output_dense.build(tuple(inputs_shape[:-1]) + (self.ff_dim,))
        self.built = True

    def call(self, inputs, training=None):
        hidden = self._dropout(self._hidden_dense(inputs), training=training)
        return self._output_dense(hidden)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ff_dim": self.ff_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
