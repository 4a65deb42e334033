"""Multi-head self-attention over a whole sequence (the encoder's), honouring a padding mask."""

import keras
from keras import ops

from keras_seq2seq.layers.attention_core import MultiHeadAttentionCore


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class SelfMHA(MultiHeadAttentionCore):
    """Multi-head self-attention where every position sees every real (non-padding) position.

    Queries come from their own projection, keys and values from one joint projection
    (the same weights `CrossMHA` has, so an encoder's self-attention and a
    cross-attention are laid out alike).

    Args:
        num_heads: number of attention heads.
        head_dim: size of each head; defaults to `d_model // num_heads`.
        attention_dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.

    Call arguments:
        inputs: [batch, length, d_model].
        padding_mask: optional boolean [batch, length], True for real tokens; keys at
            padding positions get no weight. Defaults to the Keras mask of `inputs`.
        return_attention_scores: also return [batch, heads, length, length].

    Example:

    >>> import numpy as np
    >>> layer = SelfMHA(num_heads=2)
    >>> layer(np.zeros((1, 5, 8), "float32"), np.array([[True, True, True, False, False]])).shape
    (1, 5, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (section 3.2.3).
    """

    def build(self, inputs_shape, padding_mask_shape=None):
        self._build_core(inputs_shape[-1])
        self._build_query_and_key_value(inputs_shape, inputs_shape[-1])
        self.built = True

    def call(self, inputs, padding_mask=None, training=None, return_attention_scores=False, mask=None):
        if padding_mask is None:
            padding_mask = mask
        query = self.split_heads(self._query_dense(inputs))
        key, value = self.split_key_value(self._key_value_dense(inputs))
        attention_mask = None if padding_mask is None else ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
        context, probabilities = self.attention_context(query, key, value, attention_mask, training=training)
        output = self._output_dense(context)
        return (output, probabilities) if return_attention_scores else output

    def compute_mask(self, inputs, padding_mask=None, mask=None):
        return mask
