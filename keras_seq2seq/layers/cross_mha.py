"""Encoder-decoder (cross) multi-head attention."""

import keras
from keras import ops

from keras_seq2seq.layers.attention_core import MultiHeadAttentionCore


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class CrossMHA(MultiHeadAttentionCore):
    """Multi-head attention from a decoder stream to an encoder output.

    The query is projected from the decoder stream; keys and values are projected
    from the encoder output, honouring the source padding mask. Since the encoder
    output does not change while decoding, `compute_key_value()` projects it once
    and the result is passed to every later call as `key_value`.

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head; defaults to `d_model // num_heads`.
        key_value_dim: last dimension of the encoder output; defaults to the query's.
        attention_dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.

    Call arguments:
        query: [batch, target_length, d_model], the decoder stream.
        encoder_output: [batch, source_length, key_value_dim]; not needed when
            `key_value` is given.
        encoder_padding_mask: boolean [batch, source_length], True for real tokens.
        key_value: the result of `compute_key_value(encoder_output)`. It may hold
            one source for each group of consecutive query rows (the beams of a
            sentence in beam search): [sources, ...] for [sources * group, ...]
            queries, with `encoder_padding_mask` per source. Each source's keys
            and values are then read once per call, not once per row.
        return_attention_scores: also return [batch, heads, target_length, source_length].

    Example:

    >>> import numpy as np
    >>> layer = CrossMHA(num_heads=2)
    >>> decoder_stream = np.zeros((1, 3, 8), "float32")
    >>> encoder_output = np.ones((1, 5, 8), "float32")
    >>> layer(decoder_stream, encoder_output).shape
    (1, 3, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (section 3.2.3).
    """

    def __init__(self, num_heads, key_value_dim=None, **kwargs):
        super().__init__(num_heads, **kwargs)
        if key_value_dim is not None and (not isinstance(key_value_dim, int) or key_value_dim <= 0):
            raise ValueError(
                f"key_value_dim must be a positive integer, got key_value_dim={key_value_dim!r}"
            )
        self.key_value_dim = key_value_dim

    def build(self, query_shape, encoder_output_shape=None):
        key_value_dim = self.key_value_dim or (encoder_output_shape or query_shape)[-1]
        self._build_core(query_shape[-1])
        self._build_query_and_key_value(query_shape, key_value_dim)
        self.built = True

    def compute_key_value(self, encoder_output):
        """Projects the encoder output once: `(keys, values)`, each [batch, heads, source_length, head_dim]."""
        if not self.built:
            self.build(encoder_output.shape, encoder_output.shape)  # query width defaults to the encoder's
        return self.split_key_value(self._key_value_dense(encoder_output))

    def call(
        self,
        query,
        encoder_output=None,
        encoder_padding_mask=None,
        key_value=None,
        training=None,
        return_attention_scores=False,
    ):
        if key_value is None and encoder_output is None:
            raise ValueError("CrossMHA needs either encoder_output or key_value")
        if not self.built:
            self.build(query.shape, encoder_output.shape)
        query_heads = self.split_heads(self._query_dense(query))
        if key_value is None:
            key, value = self.compute_key_value(encoder_output)
            attention_mask = _source_mask(encoder_padding_mask)
            context, probabilities = self.attention_context(query_heads, key, value, attention_mask, training=training)
        else:
            context, probabilities = self.key_value_context(query_heads, key_value, encoder_padding_mask, training)
        output = self._output_dense(context)
        return (output, probabilities) if return_attention_scores else output

    def key_value_context(self, query_heads, key_value, encoder_padding_mask=None, training=None):
        """The attention context of queries already split into heads over `compute_key_value`'s result,
        each source serving a group of consecutive query rows (see `key_value`).

        Returns `(context [rows, length, heads * head_dim], probabilities [rows, heads, length, source_length])`.
        """
        key, value = key_value
        attention_mask = _source_mask(encoder_padding_mask)
        return self.grouped_attention_context(query_heads, key, value, attention_mask, training=training)

    def compute_mask(self, query, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config["key_value_dim"] = self.key_value_dim
        return config


def _source_mask(encoder_padding_mask):
    """[sources, 1, source_length]: every query position of a source sees its real tokens."""
    if encoder_padding_mask is None:
        return None
    return ops.expand_dims(ops.cast(encoder_padding_mask, "bool"), 1)
