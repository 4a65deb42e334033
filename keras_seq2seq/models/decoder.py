"""The Transformer decoder: embedding, N blocks of masked, cross and feed-forward sublayers, logits."""

import keras
from keras import ops

from keras_seq2seq.layers import CrossMHA, FeedForward, MaskedMHA
from keras_seq2seq.layers.dense import PositionwiseDense
from keras_seq2seq.models.residual import ResidualBlock
from keras_seq2seq.models.stack import TransformerStack


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class DecoderBlock(ResidualBlock):
    """MaskedMHA -> AddNorm -> CrossMHA -> AddNorm -> FeedForward -> AddNorm.

    The cross-attention query is the masked attention's (normalized) output; its
    keys and values come from the encoder output, or from `cross_key_value`
    computed once by `cross_attention.compute_key_value(encoder_output)`.

    Call arguments:
        stream: [batch, length, d_model].
        encoder_output: [batch, source_length, d_model] (or pass `cross_key_value`).
        encoder_padding_mask: boolean [batch, source_length].
        padding_mask: boolean [batch, length] of real target tokens (full pass only).
        cache, cache_index, cache_slots: self-attention cache for incremental decoding (see `MaskedMHA`).
        cross_key_value: precomputed cross-attention keys and values.
        return_attention_scores: also return the cross-attention probabilities.

    Returns:
        `stream`, or `(stream, cache)` when a cache is given, with the cross-attention
        probabilities appended when asked.
    """

    def build(self, stream_shape):
        config = self.config
        attention_args = dict(attention_dropout=config.attention_dropout, dtype=self.dtype_policy)
        self.self_attention = MaskedMHA(config.num_heads, name="self_attention", **attention_args)
        self.self_attention.build(stream_shape)
        self.cross_attention = CrossMHA(config.num_heads, name="cross_attention", **attention_args)
        self.cross_attention.build(stream_shape)
        self.feed_forward = FeedForward(
            config.ff_dim, config.activation, config.ff_dropout, dtype=self.dtype_policy, name="feed_forward"
        )
        self.feed_forward.build(stream_shape)
        self._build_residuals(3, stream_shape)
        self.built = True

    def call(
        self,
        stream,
        encoder_output=None,
        encoder_padding_mask=None,
        padding_mask=None,
        cache=None,
        cache_index=None,
        cache_slots=None,
        cross_key_value=None,
        training=None,
        return_attention_scores=False,
    ):
        attention_input = self._sublayer_input(0, stream)
        if cache is None:
            attended = self.self_attention(attention_input, padding_mask, training=training)
        else:
            attended, cache = self.self_attention(
                attention_input, cache=cache, cache_index=cache_index, cache_slots=cache_slots, training=training
            )
        stream = self._add_residual(0, stream, attended, training)

        attended = self.cross_attention(
            self._sublayer_input(1, stream),
            encoder_output,
            encoder_padding_mask,
            key_value=cross_key_value,
            training=training,
            return_attention_scores=return_attention_scores,
        )
        if return_attention_scores:
            attended, cross_probabilities = attended
        stream = self._add_residual(1, stream, attended, training)

        transformed = self.feed_forward(self._sublayer_input(2, stream), training=training)
        stream = self._add_residual(2, stream, transformed, training)

        results = (stream,) if cache is None else (stream, cache)
        if return_attention_scores:
            results += (cross_probabilities,)
        return results[0] if len(results) == 1 else results


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class Decoder(TransformerStack):
    """Target embedding, `num_layers` `DecoderBlock`s and the projection to vocabulary logits.

    Args:
        config: a `TransformerConfig` (or a dict of its fields); the decoder uses
            its `target_vocab_size` (id 0 is padding), `decoder_layers` and
            `tie_embeddings` (project to the vocabulary with the transposed target
            embedding matrix, plus a bias, instead of a separate matrix).

    Call arguments:
        target_in_ids: int [batch, target_length], `[START] + y`, 0 for padding.
        encoder_output: [batch, source_length, d_model].
        encoder_padding_mask: boolean [batch, source_length].
        return_attention_scores: also return the last block's cross-attention
            probabilities [batch, heads, target_length, source_length].

    Returns:
        float32 logits [batch, target_length, vocab_size] (float32 even under mixed
        precision, so the softmax and the loss stay accurate).

    Incremental decoding uses `compute_cross_key_values` once per source,
    `init_cache` once per batch, then `decode_step` per new position.

    Example:

    >>> import numpy as np
    >>> from keras_seq2seq.models import TransformerConfig
    >>> config = TransformerConfig(num_layers=1, d_model=8, num_heads=2, ff_dim=16, target_vocab_size=20)
    >>> decoder = Decoder(config)
    >>> decoder(np.array([[2, 7]]), np.zeros((1, 3, 8), "float32")).shape
    (1, 2, 20)
    """

    block_class = DecoderBlock

    @property
    def vocab_size(self):
        return self.config.target_vocab_size

    @property
    def num_layers(self):
        return self.config.decoder_layers

    def build(self, target_in_ids_shape=None):
        self._build_stack()
        if self.config.tie_embeddings:
            self.output_bias = self.add_weight(
                shape=(self.vocab_size,), initializer="zeros", name="output_bias"
            )
        else:
            self.output_projection = PositionwiseDense(
                self.vocab_size, dtype=self.dtype_policy, name="output_projection"
            )
            self.output_projection.build((None, None, self.config.d_model))
        self.built = True

    def project(self, stream):
        """Vocabulary logits (float32) of the final stream."""
        if not self.config.tie_embeddings:
            return ops.cast(self.output_projection(stream), "float32")
        # One 2-D product with the embedding matrix transposed (TensorFlow and XLA fold the
        # transpose into the product: no copy of the matrix is made).
        embeddings = ops.cast(self.embedding.embeddings, stream.dtype)
        shape = ops.shape(stream)
        flat = ops.matmul(ops.reshape(stream, (-1, shape[-1])), ops.transpose(embeddings))
        logits = ops.reshape(flat, (shape[0], shape[1], self.vocab_size))
        return ops.cast(ops.add(logits, ops.cast(self.output_bias, logits.dtype)), "float32")

    def call(
        self,
        target_in_ids,
        encoder_output,
        encoder_padding_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        padding_mask = ops.not_equal(target_in_ids, 0)
        stream = self._embed(target_in_ids, training=training)
        for index, block in enumerate(self.blocks):
            last = index == len(self.blocks) - 1
            stream = block(
                stream,
                encoder_output,
                encoder_padding_mask,
                padding_mask=padding_mask,
                training=training,
                return_attention_scores=return_attention_scores and last,
            )
            if return_attention_scores and last:
                stream, cross_probabilities = stream
        logits = self.project(self._finish(stream))
        return (logits, cross_probabilities) if return_attention_scores else logits

    def compute_cross_key_values(self, encoder_output):
        """Each block's cross-attention keys and values, projected once per source."""
        return [block.cross_attention.compute_key_value(encoder_output) for block in self.blocks]

    def init_cache(self, batch_size, max_length, group_size=None):
        """Empty self-attention caches, one `(keys, values)` per block, each [batch, heads, max_length, head_dim].

        `group_size`: caches shared by groups of rows, read through `cache_slots` (see `MaskedMHA`).
        """
        return [block.self_attention.init_cache(batch_size, max_length, group_size=group_size) for block in self.blocks]

    def decode_step(
        self,
        token_ids,
        cache_index,
        cache,
        cross_key_values,
        encoder_padding_mask,
        cache_slots=None,
    ):
        """Logits for new positions given the caches of the earlier ones.

        Args:
            token_ids: int [batch, new_length], the tokens at positions
                `cache_index ... cache_index + new_length - 1` (usually one).
            cache_index: int scalar.
            cache: from `init_cache` or the previous step.
            cross_key_values: from `compute_cross_key_values`; one source may
                serve several consecutive rows (a sentence's beams: `sources`
                rows for `sources * group` token rows, see `CrossMHA`).
            encoder_padding_mask: boolean [sources, source_length].
            cache_slots: with caches from `init_cache(group_size=...)`, int [batch,
                cache length]: which slot of its group holds each position of each
                row (see `MaskedMHA`); one table serves every block.

        Returns:
            `(logits [batch, new_length, vocab_size], cache)`.
        """
        stream = self.embedding(token_ids, start_index=cache_index)
        new_cache = []
        for block, block_cache, cross_key_value in zip(self.blocks, cache, cross_key_values):
            stream, block_cache = block(
                stream,
                encoder_padding_mask=encoder_padding_mask,
                cache=block_cache,
                cache_index=cache_index,
                cache_slots=cache_slots,
                cross_key_value=cross_key_value,
            )
            new_cache.append(block_cache)
        return self.project(self._finish(stream)), new_cache
