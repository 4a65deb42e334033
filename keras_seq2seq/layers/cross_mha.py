"""Encoder-decoder (cross) multi-head attention."""

import keras
import tensorflow as tf
from keras import ops

from keras_seq2seq.layers.attention_core import MultiHeadAttentionCore, scatter_tokens


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
        model_dim = query_shape[-1]
        key_value_dim = self.key_value_dim or (encoder_output_shape or query_shape)[-1]
        head_dim = self._build_core(model_dim)
        inner_dim = self.num_heads * head_dim
        self._query_dense = self._dense(inner_dim, "query")
        self._query_dense.build(query_shape)
        # Keys and values come from one projection of the encoder output.
        self._key_value_dense = self._dense(2 * inner_dim, "key_value")
        self._key_value_dense.build((None, None, key_value_dim))
        self.built = True

    def step_layers(self):
        """The position-wise Dense layers a cached decoding step runs (keys and values: once per source)."""
        return [self._query_dense, self._output_dense]

    def compute_key_value(self, encoder_output):
        """Projects the encoder output once: `(keys, values)`, each [batch, heads, source_length, head_dim]."""
        if not self.built:
            self.build(encoder_output.shape, encoder_output.shape)  # query width defaults to the encoder's
        return self._key_and_value(encoder_output)

    def _key_and_value(self, encoder_output):
        return self._split_key_value(self._key_value_dense(encoder_output))

    def _split_key_value(self, projected):
        key, value = ops.split(projected, 2, axis=-1)
        return self.heads_first(key), self.heads_first(value)

    def key_value_of_tokens(self, tokens, positions, shape):
        """`compute_key_value` of an encoder output given as its real tokens only.

        Args:
            tokens: [count, key_value_dim], the encoder output at `positions`.
            positions: int [count, 2], each token's (row, column) in the batch.
            shape: `(batch, source_length)` of the padded layout.

        Returns:
            `(keys, values)`, each [batch, heads, source_length, head_dim], zero
            where no token was given (the padding, which the source mask hides).
        """
        return self._split_key_value(scatter_tokens(self._key_value_dense(tokens), positions, shape))

    def self_attention_of_tokens(self, tokens, positions, padding_mask):
        """Self-attention (query = memory, as in the encoder) of a batch kept as its real tokens only.

        The projections run on the `tokens` [count, d_model] alone; the attention
        itself on the padded layout [batch, length] of `padding_mask` (where the
        `positions` [count, 2] place them). Returns [count, d_model]: row i is
        `self(padded, padded, padding_mask)` at `positions[i]`, up to rounding.
        """
        shape = tf.shape(padding_mask)
        query = self.split_heads(scatter_tokens(self._query_dense(tokens), positions, shape))
        key, value = self.key_value_of_tokens(tokens, positions, shape)
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
        context, _ = self.attention_context(query, key, value, mask)
        return self._output_dense(tf.gather_nd(context, tf.cast(positions, tf.int32)))

    def call(
        self,
        query,
        encoder_output=None,
        encoder_padding_mask=None,
        key_value=None,
        training=None,
        return_attention_scores=False,
    ):
        if key_value is not None:
            key, value = key_value
        elif encoder_output is None:
            raise ValueError("CrossMHA needs either encoder_output or key_value")
        else:
            if not self.built:
                self.build(query.shape, encoder_output.shape)
            key, value = self._key_and_value(encoder_output)
        attention_mask = None
        if encoder_padding_mask is not None:
            attention_mask = ops.expand_dims(ops.cast(encoder_padding_mask, "bool"), 1)
        query_heads = self.split_heads(self._query_dense(query))
        if key_value is not None and not _same_rows(query_heads, key):
            output, probabilities = self._attend_grouped(query_heads, key, value, attention_mask, training)
        else:
            output, probabilities = self.attend(query_heads, key, value, attention_mask, training=training)
        if return_attention_scores:
            return output, probabilities
        return output

    def _attend_grouped(self, query, key, value, attention_mask, training=None):
        """`attend` where each source's `key` and `value` serve `group` consecutive query rows.

        query: [sources * group, length, heads, head_dim]; key, value: [sources, heads,
        source_length, head_dim]; the mask per source. The group's rows become more
        query positions of their source, so each source's keys and values are read
        once per step instead of once per row (beam search's beams).
        """
        shape = tf.shape(query)
        sources = tf.shape(key)[0]
        grouped = tf.reshape(query, [sources, -1, self.num_heads, self._resolved_head_dim])
        context, probabilities = self.attention_context(grouped, key, value, attention_mask, training=training)
        output = self._output_dense(tf.reshape(context, [shape[0], shape[1], self._inner_dim]))
        # [sources, heads, group * length, source_length] -> [rows, heads, length, source_length].
        per_source = tf.reshape(probabilities, [sources, self.num_heads, -1, shape[1], tf.shape(key)[2]])
        per_row = tf.transpose(per_source, (0, 2, 1, 3, 4))
        return output, tf.reshape(per_row, [shape[0], self.num_heads, shape[1], tf.shape(key)[2]])

    def compute_mask(self, query, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config["key_value_dim"] = self.key_value_dim
        return config


def _same_rows(query, key):
    """Whether `query` and `key` have the same (static) number of rows; False when either is unknown."""
    rows = query.shape[0], key.shape[0]
    return None not in rows and rows[0] == rows[1]
