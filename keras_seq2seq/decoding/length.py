"""Length policy of the searches: output limits, length buckets, cache sizes and the length penalty."""

import tensorflow as tf

from keras_seq2seq.data.tokenizers import PAD_ID

LENGTH_BUCKET = 16


def source_lengths(source_ids):
    """Real (non-padding) tokens per row of [batch, length] ids."""
    return tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)


def output_length_limits(source_ids, max_length, ratio=1.5, extra=10):
    """Per-sentence output limit: `ratio * source_length + extra`, at most `max_length - 1`."""
    limits = tf.cast(tf.cast(source_lengths(source_ids), tf.float32) * ratio, tf.int32) + extra
    return tf.minimum(limits, max_length - 1)


def decoding_limits(source_ids, max_output_length, model_max_length, suppress_end=False):
    """`(cap, limits)` of a search: the overall cap on output tokens (`max_output_length`, or
    `model_max_length - 1`) and each sentence's limit [batch] (`output_length_limits` under the
    cap; the cap itself for every sentence with `suppress_end`, which forces that length)."""
    cap = max_output_length or model_max_length - 1
    if suppress_end:
        return cap, tf.fill([tf.shape(source_ids)[0]], cap)
    return cap, output_length_limits(source_ids, cap + 1)


def bucketed_length(length):
    """`length` (an int or an int tensor) rounded up to a multiple of LENGTH_BUCKET."""
    return (length + LENGTH_BUCKET - 1) // LENGTH_BUCKET * LENGTH_BUCKET


def cache_block_sizes(positions):
    """The self-attention cache sizes a decoding loop goes through: 16, 32, 64, ... >= `positions`.

    The cache starts small and doubles when full, so a step attends over the
    positions written so far (rounded up to a power of two), not over the longest
    output the loop allows: the cost per token stays flat as outputs get longer.
    Each size is a static shape, so the loop compiles with XLA.
    """
    sizes, size = [], LENGTH_BUCKET
    while size < positions:
        sizes.append(size)
        size *= 2
    return sizes + [bucketed_length(positions)]


def length_penalty(lengths, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016), float32."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)
