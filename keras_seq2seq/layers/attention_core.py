"""The multi-head scaled dot-product attention shared by `SelfMHA`, `MaskedMHA` and `CrossMHA`."""

import keras
from keras import ops

from keras_seq2seq.layers.dense import PositionwiseDense
from keras_seq2seq.layers.dropout import Dropout


def mask_fill_value(dtype):
    """The score given to masked positions, chosen so it stays finite in `dtype`.

    float16 tops out at 65504, so -1e9 would become -inf there and turn a fully
    masked row into NaN; bfloat16 and float32 share float32's range.
    """
    if keras.backend.standardize_dtype(dtype) == "float16":
        return -3e4
    return -1e9


class MultiHeadAttentionCore(keras.layers.Layer):
    """What the attention layers share: head splitting, scaled dot-product attention, the output projection.

    `SelfMHA`, `MaskedMHA` and `CrossMHA` create their input projections in `build()`
    and call `attention_context()` (or `grouped_attention_context()`, where several
    consecutive query rows share one row of keys and values) with queries, keys and
    values already split into heads. Not meant to be used directly.

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head; defaults to `d_model // num_heads`.
        attention_dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.
    """

    def __init__(
        self,
        num_heads,
        head_dim=None,
        attention_dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"num_heads must be a positive integer, got num_heads={num_heads!r}")
        if head_dim is not None and (not isinstance(head_dim, int) or head_dim <= 0):
            raise ValueError(f"head_dim must be a positive integer, got head_dim={head_dim!r}")
        if not 0.0 <= attention_dropout < 1.0:
            raise ValueError(
                f"attention_dropout must be in [0, 1), got attention_dropout={attention_dropout!r}"
            )
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.attention_dropout = attention_dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def _resolve_head_dim(self, model_dim):
        if self.head_dim is not None:
            return self.head_dim
        if model_dim % self.num_heads:
            raise ValueError(
                f"the input size {model_dim} is not divisible by num_heads={self.num_heads}; "
                "pass head_dim explicitly"
            )
        return model_dim // self.num_heads

    def _dense(self, units, name):
        return PositionwiseDense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _build_core(self, model_dim):
        """Creates the output projection and attention dropout; returns the head size."""
        head_dim = self._resolve_head_dim(model_dim)
        self._inner_dim = self.num_heads * head_dim
        self._resolved_head_dim = head_dim
        self._output_dense = self._dense(model_dim, "output")
        self._output_dense.build((None, None, self._inner_dim))
        self._dropout = Dropout(self.attention_dropout, dtype=self.dtype_policy)
        return head_dim

    def _build_query_and_key_value(self, query_shape, key_value_dim):
        """The separate query projection and the joint key-value projection (`SelfMHA`, `CrossMHA`)."""
        self._query_dense = self._dense(self._inner_dim, "query")
        self._query_dense.build(query_shape)
        # Keys and values come from one projection: one matmul instead of two.
        self._key_value_dense = self._dense(2 * self._inner_dim, "key_value")
        self._key_value_dense.build((None, None, key_value_dim))

    def split_key_value(self, projected):
        """The joint key-value projection [batch, length, 2 * heads * head_dim] as `(keys, values)`,
        each [batch, heads, length, head_dim]."""
        key, value = ops.split(projected, 2, axis=-1)
        return self.heads_first(key), self.heads_first(value)

    def split_heads(self, projected):
        """[batch, length, heads * head_dim] -> [batch, length, heads, head_dim]."""
        shape = ops.shape(projected)
        return ops.reshape(
            projected, (shape[0], shape[1], self.num_heads, self._resolved_head_dim)
        )

    def heads_first(self, projected):
        """[batch, length, heads * head_dim] -> [batch, heads, length, head_dim].

        Keys and values are kept in this layout (and so are the caches): each head's
        keys are then one contiguous matrix, and attention is a plain batched matmul
        with no transpose of the (long) key and value tensors at every decoding step.
        """
        return ops.transpose(self.split_heads(projected), (0, 2, 1, 3))

    def attention_context(self, query, key, value, attention_mask, training=None):
        """The heads' merged context [batch, target_len, heads * head_dim], before the output
        projection, and the attention probabilities.

        Args:
            query: [batch, target_len, heads, head_dim].
            key, value: [batch, heads, source_len, head_dim] (see `heads_first`).
            attention_mask: boolean, broadcastable to [batch, target_len, source_len];
                True where the query position may attend the key position.
        """
        query = ops.multiply(query, ops.cast(self._resolved_head_dim**-0.5, query.dtype))
        scores = ops.einsum("bthd,bhsd->bhts", query, key)
        if attention_mask is not None:
            mask = ops.expand_dims(ops.cast(attention_mask, "bool"), axis=1)
            scores = ops.where(mask, scores, ops.cast(mask_fill_value(scores.dtype), scores.dtype))
        probabilities = ops.softmax(scores, axis=-1)
        dropped = self._dropout(probabilities, training=training)
        context = ops.einsum("bhts,bhsd->bthd", dropped, value)
        shape = ops.shape(context)
        return ops.reshape(context, (shape[0], shape[1], self._inner_dim)), probabilities

    def grouped_attention_context(self, query, key, value, attention_mask, training=None):
        """`attention_context` where each row of `key` and `value` serves a group of consecutive query rows.

        Beam search's beams share their sentence's keys and values this way: the
        group's rows become more query positions of their row of keys, which are then
        read once instead of once per query row.

        Args:
            query: [rows, length, heads, head_dim], `rows` a multiple of the key rows.
            key, value: [groups, heads, key_length, head_dim].
            attention_mask: boolean, broadcastable to [groups, group * length,
                key_length], query position `i * length + t` for row `i` of a group and
                position `t`; True where it may attend.

        Returns:
            `(context, probabilities)`: [rows, length, heads * head_dim] and
            [rows, heads, length, key_length], per query row.
        """
        rows, length = ops.shape(query)[0], ops.shape(query)[1]
        groups, key_length = ops.shape(key)[0], ops.shape(key)[2]
        grouped_query = ops.reshape(query, (groups, -1, self.num_heads, self._resolved_head_dim))
        context, probabilities = self.attention_context(grouped_query, key, value, attention_mask, training=training)
        per_group = ops.reshape(probabilities, (groups, self.num_heads, -1, length, key_length))
        per_row = ops.reshape(ops.transpose(per_group, (0, 2, 1, 3, 4)), (rows, self.num_heads, length, key_length))
        return ops.reshape(context, (rows, length, self._inner_dim)), per_row

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "attention_dropout": self.attention_dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
