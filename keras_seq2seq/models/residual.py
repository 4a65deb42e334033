"""The residual wrapper shared by encoder and decoder blocks: post-norm (AddNorm) or pre-norm."""

import keras

from keras_seq2seq.layers import AddNorm
from keras_seq2seq.layers.dropout import Dropout


class ResidualBlock(keras.layers.Layer):
    """Base of `EncoderBlock` and `DecoderBlock`: their hyper-parameters and residual connections.

    Post-norm (the paper): `AddNorm(x, sublayer(x))`. Pre-norm
    (`normalize_first=True`): `x + Dropout(sublayer(LayerNorm(x)))`, which trains
    more stably in deep stacks; the stack then ends with one more LayerNorm.
    """

    def __init__(
        self,
        num_heads,
        ff_dim,
        dropout=0.0,
        attention_dropout=0.0,
        ff_dropout=0.0,
        activation="relu",
        normalize_first=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.ff_dropout = ff_dropout
        self.activation = activation
        self.normalize_first = normalize_first

    def _build_residuals(self, count, stream_shape):
        if self.normalize_first:
            self._pre_norms = [
                keras.layers.LayerNormalization(epsilon=1e-6, dtype=self.dtype_policy, name=f"pre_norm_{i}")
                for i in range(count)
            ]
            for norm in self._pre_norms:
                norm.build(stream_shape)
            self._residual_dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        else:
            self._add_norms = [
                AddNorm(self.dropout, dtype=self.dtype_policy, name=f"add_norm_{i}") for i in range(count)
            ]
            for add_norm in self._add_norms:
                add_norm.build(stream_shape)

    def _sublayer_input(self, index, stream):
        """What sublayer `index` reads: the stream itself (post-norm) or its normalization (pre-norm)."""
        return self._pre_norms[index](stream) if self.normalize_first else stream

    def _add_residual(self, index, stream, sublayer_output, training):
        """Closes residual connection `index` around `sublayer_output`."""
        if self.normalize_first:
            return stream + self._residual_dropout(sublayer_output, training=training)
        return self._add_norms[index](stream, sublayer_output, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "ff_dropout": self.ff_dropout,
                "activation": self.activation,
                "normalize_first": self.normalize_first,
            }
        )
        return config
