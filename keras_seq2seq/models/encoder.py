"""The Transformer encoder: embedding, then N blocks of self-attention and feed-forward."""

import keras
from keras import ops

from keras_seq2seq.layers import FeedForward, SelfMHA
from keras_seq2seq.models.residual import ResidualBlock
from keras_seq2seq.models.stack import TransformerStack


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class EncoderBlock(ResidualBlock):
    """Self-attention -> AddNorm -> FeedForward -> AddNorm.

    Args:
        config: a `TransformerConfig`; the block reads `num_heads`, `ff_dim`, the
            dropout rates, `activation` and `normalize_first`.

    Call arguments:
        stream: [batch, length, d_model].
        padding_mask: boolean [batch, length], True for real tokens.
    """

    def build(self, stream_shape):
        config = self.config
        self.self_attention = SelfMHA(
            config.num_heads,
            attention_dropout=config.attention_dropout,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.self_attention.build(stream_shape)
        self.feed_forward = FeedForward(
            config.ff_dim, config.activation, config.ff_dropout, dtype=self.dtype_policy, name="feed_forward"
        )
        self.feed_forward.build(stream_shape)
        self._build_residuals(2, stream_shape)
        self.built = True

    def call(self, stream, padding_mask=None, training=None):
        attention_input = self._sublayer_input(0, stream)
        attended = self.self_attention(attention_input, padding_mask, training=training)
        stream = self._add_residual(0, stream, attended, training)
        transformed = self.feed_forward(self._sublayer_input(1, stream), training=training)
        return self._add_residual(1, stream, transformed, training)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class Encoder(TransformerStack):
    """Reads a whole source sentence: `PositionalEmbedding` then `num_layers` `EncoderBlock`s.

    Args:
        config: a `TransformerConfig` (or a dict of its fields); the encoder uses
            its `source_vocab_size` (id 0 is padding) and `num_layers`.

    Call arguments:
        source_ids: int [batch, source_length], 0 for padding.

    Returns:
        `(encoder_output, padding_mask)`: [batch, source_length, d_model] and the
        boolean [batch, source_length] mask of real tokens.

    Example:

    >>> import numpy as np
    >>> from keras_seq2seq.models import TransformerConfig
    >>> config = TransformerConfig(num_layers=1, d_model=8, num_heads=2, ff_dim=16, source_vocab_size=20)
    >>> encoder = Encoder(config)
    >>> output, mask = encoder(np.array([[4, 5, 0]]))
    >>> output.shape, mask.numpy().tolist()
    ((1, 3, 8), [[True, True, False]])
    """

    block_class = EncoderBlock

    @property
    def vocab_size(self):
        return self.config.source_vocab_size

    @property
    def num_layers(self):
        return self.config.num_layers

    def build(self, source_ids_shape=None):
        self._build_stack()
        self.built = True

    def call(self, source_ids, training=None):
        padding_mask = ops.not_equal(source_ids, 0)
        stream = self._embed(source_ids, training=training)
        for block in self.blocks:
            stream = block(stream, padding_mask, training=training)
        return self._finish(stream), padding_mask
