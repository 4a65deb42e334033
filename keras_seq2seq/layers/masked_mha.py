"""Causal multi-head self-attention with an incremental key/value cache."""

import keras
from keras import ops

from keras_seq2seq.layers.attention_core import MultiHeadAttentionCore


def causal_mask(query_length, key_length, query_offset=0):
    """Boolean [query_length, key_length]: query i (at position offset + i) sees keys j <= offset + i."""
    query_positions = ops.arange(query_length) + query_offset
    key_positions = ops.arange(key_length)
    return ops.expand_dims(query_positions, 1) >= ops.expand_dims(key_positions, 0)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class MaskedMHA(MultiHeadAttentionCore):
    """Multi-head self-attention where a position sees only itself and earlier positions.

    The causal mask is combined with an optional padding mask over the keys. For
    incremental decoding, pass a `cache` holding the keys and values of earlier
    positions and the `cache_index` of the first new position: the layer writes the
    new keys and values into the cache and returns the output for the new
    positions only, together with the updated cache.

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head; defaults to `d_model // num_heads`.
        attention_dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.

    Call arguments:
        inputs: [batch, length, d_model].
        padding_mask: optional boolean [batch, length], True for real tokens.
            Defaults to the Keras mask of `inputs` (set by `PositionalEmbedding`).
            Ignored when a cache is given: cached positions are all real.
        cache: optional `(keys, values)`, each [batch, num_heads, max_length, head_dim]
            (two tensors, not one stacked: reading a half of a stacked cache would copy it
            at every step under XLA).
        cache_index: int scalar, position of `inputs[:, 0]` in the cache.
        return_attention_scores: also return [batch, heads, length, key_length].

    Returns:
        `output`, or `(output, cache)` when a cache is given; the attention
        probabilities are appended when `return_attention_scores` is True.

    Example:

    >>> import numpy as np
    >>> layer = MaskedMHA(num_heads=2)
    >>> layer(np.zeros((1, 5, 8), "float32")).shape
    (1, 5, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (section 3.2.3).
    """

    def build(self, inputs_shape):
        model_dim = inputs_shape[-1]
        head_dim = self._build_core(model_dim)
        # Queries, keys and values come from one projection: one matmul instead of three.
        self._query_key_value_dense = self._dense(3 * self.num_heads * head_dim, "query_key_value")
        self._query_key_value_dense.build(inputs_shape)
        self.built = True

    def step_layers(self):
        """The position-wise Dense layers a cached decoding step runs."""
        return [self._query_key_value_dense, self._output_dense]

    def init_cache(self, batch_size, max_length, dtype=None):
        """An empty `(keys, values)` cache for `max_length` positions."""
        shape = (batch_size, self.num_heads, max_length, self._resolved_head_dim)
        dtype = dtype or self.compute_dtype
        return ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype)

    def call(
        self,
        inputs,
        padding_mask=None,
        cache=None,
        cache_index=None,
        training=None,
        return_attention_scores=False,
        mask=None,
    ):
        if padding_mask is None:
            padding_mask = mask
        projected = self._query_key_value_dense(inputs)
        query, key, value = ops.split(projected, 3, axis=-1)
        query, key, value = self.split_heads(query), self.heads_first(key), self.heads_first(value)
        query_length = ops.shape(inputs)[1]

        if cache is None:
            attention_mask = ops.expand_dims(causal_mask(query_length, query_length), 0)
            if padding_mask is not None:
                attention_mask = ops.logical_and(
                    attention_mask, ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
                )
        else:
            if cache_index is None:
                raise ValueError("MaskedMHA: cache_index is required when a cache is given")
            keys, values = cache
            start = (0, 0, cache_index, 0)
            key = ops.slice_update(keys, start, ops.cast(key, keys.dtype))
            value = ops.slice_update(values, start, ops.cast(value, values.dtype))
            cache = (key, value)
            attention_mask = ops.expand_dims(
                causal_mask(query_length, ops.shape(key)[2], query_offset=cache_index), 0
            )

        output, probabilities = self.attend(query, key, value, attention_mask, training=training)
        results = (output,) if cache is None else (output, cache)
        if return_attention_scores:
            results += (probabilities,)
        return results[0] if len(results) == 1 else results

    def compute_mask(self, inputs, mask=None):
        return mask
