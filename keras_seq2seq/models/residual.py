"""The residual wrapper shared by encoder and decoder blocks: post-norm (AddNorm) or pre-norm."""

import keras

from keras_seq2seq.layers import AddNorm
from keras_seq2seq.layers.dropout import Dropout
from keras_seq2seq.models.config import as_config


class ResidualBlock(keras.layers.Layer):
    """Base of `EncoderBlock` and `DecoderBlock`: their residual connections.

    Args:
        config: a `TransformerConfig` (or a dict of its fields); a block reads its
            `num_heads`, `ff_dim`, dropout rates, `activation` and `normalize_first`.

    Post-norm (the paper): `AddNorm(x, sublayer(x))`. Pre-norm
    (`normalize_first=True`): `x + Dropout(sublayer(LayerNorm(x)))`, which trains
    more stably in deep stacks; the stack then ends with one more LayerNorm.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.config = as_config(config)

    def _build_residuals(self, count, stream_shape):
        if self.config.normalize_first:
            self._pre_norms = [
                keras.layers.LayerNormalization(epsilon=1e-6, dtype=self.dtype_policy, name=f"pre_norm_{i}")
                for i in range(count)
            ]
            for norm in self._pre_norms:
                norm.build(stream_shape)
            self._residual_dropout = Dropout(self.config.dropout, dtype=self.dtype_policy)
        else:
            self._add_norms = [
                AddNorm(self.config.dropout, dtype=self.dtype_policy, name=f"add_norm_{i}") for i in range(count)
            ]
            for add_norm in self._add_norms:
                add_norm.build(stream_shape)

    def _sublayer_input(self, index, stream):
        """What sublayer `index` reads: the stream itself (post-norm) or its normalization (pre-norm)."""
        return self._pre_norms[index](stream) if self.config.normalize_first else stream

    def _add_residual(self, index, stream, sublayer_output, training):
        """Closes residual connection `index` around `sublayer_output`."""
        if self.config.normalize_first:
            return stream + self._residual_dropout(sublayer_output, training=training)
        return self._add_norms[index](stream, sublayer_output, training=training)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}
