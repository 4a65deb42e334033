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
        cache_slots: for a cache shared by groups of consecutive rows (beam search's
            beams, see `init_cache(group_size=...)`): int [batch, max_length], which
            slot of its group holds each position of each row's keys and values. The
            caller gives the new positions the row's own slot (`row % group_size`).
            The cache is then [batch // group_size, num_heads, max_length * group_size,
            head_dim]: a row writes its new keys in its own slot, and reads its earlier
            ones wherever its hypothesis's ancestors left them, so when beams are
            reordered only this small table follows them, not the cache.
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

    def init_cache(self, batch_size, max_length, dtype=None, group_size=None):
        """An empty `(keys, values)` cache for `max_length` positions.

        `group_size`: a cache shared by groups of `group_size` consecutive rows (used
        with `cache_slots`), [batch_size // group_size, heads, max_length * group_size,
        head_dim]; None: one row each, [batch_size, heads, max_length, head_dim].
        """
        if not self.built:
            raise ValueError("MaskedMHA.init_cache: the layer is not built yet (call it once, or build(input_shape))")
        group_size = group_size or 1
        if isinstance(batch_size, int) and batch_size % group_size:
            raise ValueError(
                f"MaskedMHA.init_cache: batch_size={batch_size} is not a whole number of groups of "
                f"group_size={group_size}"
            )
        shape = (batch_size // group_size, self.num_heads, max_length * group_size, self._resolved_head_dim)
        dtype = dtype or self.compute_dtype
        return ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype)

    @staticmethod
    def shared_cache(part, group_size):
        """A per-row cache tensor [batch, heads, length, head_dim] as slot 0 of a cache shared
        by groups of `group_size` rows, one group per row (see `cache_slots`), the other slots zero."""
        shape = ops.shape(part)
        slotted = ops.pad(ops.expand_dims(part, 3), ((0, 0), (0, 0), (0, 0), (0, group_size - 1), (0, 0)))
        return ops.reshape(slotted, (shape[0], shape[1], shape[2] * group_size, shape[3]))

    def call(
        self,
        inputs,
        padding_mask=None,
        cache=None,
        cache_index=None,
        cache_slots=None,
        training=None,
        return_attention_scores=False,
        mask=None,
    ):
        query, key, value = self.split_query_key_value(self._query_key_value_dense(inputs))
        if cache is None:
            if padding_mask is None:
                padding_mask = mask
            context, probabilities = self.causal_context(query, key, value, padding_mask, training=training)
        else:
            context, cache, probabilities = self.cached_context(
                query, key, value, cache, cache_index, cache_slots, training=training
            )
        results = (self._output_dense(context),) if cache is None else (self._output_dense(context), cache)
        if return_attention_scores:
            results += (probabilities,)
        return results[0] if len(results) == 1 else results

    def split_query_key_value(self, projected):
        """The joint projection [batch, length, 3 * heads * head_dim] as `(query, key, value)`:
        [batch, length, heads, head_dim] and twice [batch, heads, length, head_dim]."""
        query, key, value = ops.split(projected, 3, axis=-1)
        return self.split_heads(query), self.heads_first(key), self.heads_first(value)

    def causal_context(self, query, key, value, padding_mask=None, training=None):
        """Attention of every position over itself and the earlier ones (no cache):
        `(context [batch, length, heads * head_dim], probabilities)`."""
        length = ops.shape(query)[1]
        attention_mask = ops.expand_dims(causal_mask(length, length), 0)
        if padding_mask is not None:
            attention_mask = ops.logical_and(attention_mask, ops.expand_dims(ops.cast(padding_mask, "bool"), 1))
        return self.attention_context(query, key, value, attention_mask, training=training)

    def cached_context(self, query, key, value, cache, cache_index, cache_slots=None, training=None):
        """Writes the new positions' keys and values into `cache` and attends over it.

        Args: as `call`'s, with `query`, `key`, `value` from `split_query_key_value`.

        Returns:
            `(context [batch, new_length, heads * head_dim], cache, probabilities)`.
        """
        if cache_index is None:
            raise ValueError("MaskedMHA: cache_index is required when a cache is given")
        if cache_slots is not None:
            return self._context_in_slots(query, key, value, cache, cache_index, cache_slots, training)
        keys, values = cache
        start = (0, 0, cache_index, 0)
        keys = ops.slice_update(keys, start, ops.cast(key, keys.dtype))
        values = ops.slice_update(values, start, ops.cast(value, values.dtype))
        attention_mask = ops.expand_dims(
            causal_mask(ops.shape(query)[1], ops.shape(keys)[2], query_offset=cache_index), 0
        )
        context, probabilities = self.attention_context(query, keys, values, attention_mask, training=training)
        return context, (keys, values), probabilities

    def _context_in_slots(self, query, key, value, cache, cache_index, slots, training):
        """`cached_context` where a group's rows share one cache (see `cache_slots`).

        The cache holds position p of slot j at index `p * group + j`: a step's new
        keys and values, one per slot, are then one contiguous write, and the cache
        grows by padding its end. The group's rows attend as more query positions of
        the group (`grouped_attention_context`); row i sees key (p, j) when its table
        says slot j holds its position p, and p is not after the query's own position.
        """
        keys, values = cache
        heads, head_dim = self.num_heads, self._resolved_head_dim
        rows, new_length = ops.shape(query)[0], ops.shape(query)[1]
        groups, length = ops.shape(keys)[0], ops.shape(slots)[1]
        group = ops.shape(keys)[2] // length
        if isinstance(rows, int) and isinstance(groups, int) and isinstance(group, int) and rows != groups * group:
            raise ValueError(
                f"MaskedMHA: {rows} rows do not fill the cache's {groups} groups of {group} slots "
                f"(cache positions {ops.shape(keys)[2]}, cache_slots positions {length})"
            )

        def in_slots(part):  # [rows, heads, new, head_dim] -> [groups, heads, new * group, head_dim]
            part = ops.reshape(ops.cast(part, keys.dtype), (groups, group, heads, new_length, head_dim))
            return ops.reshape(ops.transpose(part, (0, 2, 3, 1, 4)), (groups, heads, new_length * group, head_dim))

        start = (0, 0, cache_index * group, 0)
        keys = ops.slice_update(keys, start, in_slots(key))
        values = ops.slice_update(values, start, in_slots(value))
        owner = ops.equal(ops.expand_dims(slots, 2), ops.arange(group, dtype=slots.dtype))  # [rows, length, group]
        causal = causal_mask(new_length, length, query_offset=cache_index)  # [new, length]
        attention_mask = ops.logical_and(ops.expand_dims(owner, 1), causal[None, :, :, None])
        attention_mask = ops.reshape(attention_mask, (groups, group * new_length, length * group))
        context, probabilities = self.grouped_attention_context(query, keys, values, attention_mask, training=training)
        # Each earlier position's weight sits in one slot: [rows, heads, new, length].
        per_slot = ops.reshape(probabilities, (rows, heads, new_length, length, group))
        return context, (keys, values), ops.sum(per_slot, axis=4)

    def compute_mask(self, inputs, mask=None):
        return mask
