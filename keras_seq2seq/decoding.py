"""Autoregressive decoding over the cached decoder step: greedy, batched, exportable.

The encoder runs once per batch and its cross-attention keys and values are projected
once; each step feeds one new token per sentence through `Decoder.decode_step`, which
only computes the new position. Finished sentences emit padding; the loop ends when
every sentence has produced `[END]` or reached its length limit.
"""

import tensorflow as tf

from keras_seq2seq.data.tokenizers import END_ID, PAD_ID, START_ID

LENGTH_BUCKET = 16


def output_length_limits(source_ids, max_length, ratio=1.5, extra=10):
    """Per-sentence output limit: `ratio * source_length + extra`, at most `max_length`."""
    source_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)
    limits = tf.cast(tf.cast(source_lengths, tf.float32) * ratio, tf.int32) + extra
    return tf.minimum(limits, max_length - 1)


def _bucketed(length):
    """`length` rounded up to a multiple of LENGTH_BUCKET (few distinct cache shapes)."""
    return (length + LENGTH_BUCKET - 1) // LENGTH_BUCKET * LENGTH_BUCKET


def greedy_decode(model, source_ids, max_output_length=None, suppress_end=False):
    """Greedy translation ids of a batch of source ids.

    Args:
        model: a `Seq2SeqTransformer`.
        source_ids: int32 [batch, source_length], 0 for padding.
        max_output_length: overall cap on output tokens; defaults to the model's
            `max_length - 1`. Each sentence also stops at 1.5 x its length + 10.
        suppress_end: never emit `[END]` (benchmarks force an exact length this way).

    Returns:
        `(token_ids, scores)`: int32 [batch, output_length] without `[START]`, ending
        with `[END]` then padding; and the float32 sum of log-probabilities per sentence.
    """
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    cap = max_output_length or model.max_length - 1
    limits = output_length_limits(source_ids, cap + 1)
    if suppress_end:
        limits = tf.fill([batch_size], cap)
    steps = tf.reduce_max(limits) if max_output_length is None or not suppress_end else cap
    cache_length = _bucketed(steps + 1)

    encoder_output, source_mask = model.encode(source_ids)
    cross_key_values = model.decoder.compute_cross_key_values(encoder_output)
    cache = model.decoder.init_cache(batch_size, cache_length)
    output = tf.TensorArray(tf.int32, size=steps, element_shape=tf.TensorShape([None]))
    end_penalty = tf.one_hot(END_ID, model.target_vocab_size, on_value=-1e9, off_value=0.0)

    def body(step, token, finished, scores, cache, output):
        logits, cache = model.decoder.decode_step(
            token[:, None], step, cache, cross_key_values, source_mask
        )
        log_probabilities = tf.nn.log_softmax(logits[:, 0])
        if suppress_end:
            log_probabilities += end_penalty
        next_token = tf.argmax(log_probabilities, axis=-1, output_type=tf.int32)
        # A sentence at its limit ends here.
        next_token = tf.where(step + 1 >= limits, END_ID, next_token) if not suppress_end else next_token
        next_token = tf.where(finished, PAD_ID, next_token)
        gained = tf.gather(log_probabilities, next_token, batch_dims=1)
        scores += tf.where(finished, 0.0, gained)
        finished = finished | tf.equal(next_token, END_ID)
        return step + 1, next_token, finished, scores, cache, output.write(step, next_token)

    def condition(step, token, finished, scores, cache, output):
        return tf.logical_and(step < steps, tf.logical_not(tf.reduce_all(finished)))

    _, _, _, scores, _, output = tf.while_loop(
        condition,
        body,
        (
            tf.constant(0),
            tf.fill([batch_size], START_ID),
            tf.zeros([batch_size], tf.bool),
            tf.zeros([batch_size], tf.float32),
            cache,
            output,
        ),
    )
    return tf.transpose(output.stack()), scores


def uncached_greedy_decode(model, source_ids, max_output_length):
    """Greedy decoding that re-runs the whole decoder every step (the tutorial's way).

    For tests and benchmarks: same tokens as `greedy_decode`, quadratic cost.
    """
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    limits = output_length_limits(source_ids, max_output_length + 1)
    encoder_output, source_mask = model.encode(source_ids)
    target = tf.fill([batch_size, 1], START_ID)
    finished = tf.zeros([batch_size], tf.bool)
    for step in range(max_output_length):
        logits = model.decoder(target, encoder_output, source_mask)
        next_token = tf.argmax(logits[:, -1], axis=-1, output_type=tf.int32)
        next_token = tf.where(step + 1 >= limits, END_ID, next_token)
        next_token = tf.where(finished, PAD_ID, next_token)
        finished = finished | tf.equal(next_token, END_ID)
        target = tf.concat([target, next_token[:, None]], axis=1)
        if bool(tf.reduce_all(finished)):
            break
    return target[:, 1:]
