"""Beam search over the cached decoder step, each sentence's beams sharing its caches."""

from typing import NamedTuple

import tensorflow as tf
from keras import ops

from keras_seq2seq.data.tokenizers import END_ID, PAD_ID, START_ID
from keras_seq2seq.decoding.cache import run_search_loop
from keras_seq2seq.decoding.length import cache_block_sizes, decoding_limits
from keras_seq2seq.decoding.length import length_penalty as gnmt_length_penalty
from keras_seq2seq.decoding.step import as_decoding_step


class BeamState(NamedTuple):
    """The loop state of `beam_search`; `rows` = batch x beam_size, a sentence's beams consecutive."""

    step: tf.Tensor  # int32 [], the position the next step writes
    last_token: tf.Tensor  # int32 [rows], each hypothesis's last token
    tokens: tf.Tensor  # int32 [rows, max_output_length], each hypothesis so far, then zeros
    scores: tf.Tensor  # float32 [batch, beam_size], summed log-probabilities (no length penalty)
    finished: tf.Tensor  # bool [rows], [END] emitted
    cache: list  # per block (keys, values), shared by a sentence's beams: [batch, heads, positions * beam, head_dim]
    slots: tf.Tensor  # int32 [rows, positions], the cache slot holding each position of each hypothesis


def beam_growth(beam_size):
    """How `BeamState`'s position-holding fields grow (see `while_in_cache_blocks`)."""
    return {"cache": (-2, beam_size), "slots": (-1, 1)}


def _block_size(size, block):
    """A divisor of `size` near `block` (no padding copy), or `block` if none lies within 2x of it."""
    for width in sorted(range(block // 2, 2 * block + 1), key=lambda width: (abs(width - block), width)):
        if size % width == 0:
            return width
    return block


def blocked_top_k(values, k, block=128):
    """`tf.math.top_k(values, k)` of [rows, n] values, by way of block maxima (same result).

    The k largest values lie in the k blocks with the largest maxima: a block whose
    maximum is beaten by k other blocks' maxima has k larger values elsewhere. So
    one pass takes each block's maximum, and the exact top-k runs on those k blocks
    only. XLA's top-k on CPU sorts the whole row, which this avoids (docs/design.md),
    with identical values and indices, ties included.
    `block` is a target: a divisor of n near it is used when there is one.
    """
    size = values.shape[-1]
    if size is None or k * block >= size:
        return tf.math.top_k(values, k)
    block = _block_size(size, block)
    padded_size = -(-size // block) * block
    if padded_size != size:
        values = tf.pad(values, [[0, 0], [0, padded_size - size]], constant_values=float("-inf"))
    blocks = tf.reshape(values, [tf.shape(values)[0], padded_size // block, block])
    _, best_blocks = tf.math.top_k(tf.reduce_max(blocks, axis=-1), k)
    # In index order, so ties go to the lowest index as in `tf.math.top_k`.
    best_blocks = tf.sort(best_blocks, axis=-1)
    candidates = tf.reshape(tf.gather(blocks, best_blocks, batch_dims=1), [tf.shape(values)[0], k * block])
    top_values, within = tf.math.top_k(candidates, k)
    indices = tf.gather(best_blocks, within // block, batch_dims=1) * block + within % block
    return top_values, indices


def top_log_probabilities(logits, k, excluded=None):
    """The `k` largest log-softmax values of each row of [rows, vocab] `logits`, and their ids.

    Equal to `blocked_top_k(tf.nn.log_softmax(logits), k)` up to rounding, without
    writing the [rows, vocab] log-probabilities: the top k of the logits themselves
    (the same ids: log-softmax only shifts a row), then each row's log-sum-exp,
    whose maximum is the best logit. On beam search's 256 rows of 8000 this reads
    the logits twice instead of writing and reading them four times.

    Args:
        excluded: a token id never chosen (its probability still counts in the
            normalisation), or None.

    Returns:
        `(log_probabilities, ids, log_sum_exp)`: [rows, k] each, best first, and
        each row's log-sum-exp [rows] (to score other tokens of the row).
    """
    selectable = logits
    if excluded is not None:
        selectable = logits + tf.one_hot(excluded, tf.shape(logits)[-1], on_value=-1e9, off_value=0.0)
    top_logits, ids = blocked_top_k(selectable, k)
    # The best logit, as a reduction: a slice of the top-k output would stop XLA from
    # compiling the top-k as one (it would sort the whole [rows, k x block] instead).
    row_max = tf.reduce_max(top_logits, axis=-1)
    if excluded is not None:
        row_max = tf.maximum(row_max, logits[:, excluded])
    log_sum_exp = row_max + tf.math.log(tf.reduce_sum(tf.exp(logits - row_max[:, None]), axis=-1))
    return top_logits - log_sum_exp[:, None], ids, log_sum_exp


def beam_search(
    model,
    source_ids,
    beam_size=4,
    length_penalty=0.6,
    max_output_length=None,
    suppress_end=False,
    static_shapes=False,
    encoded=None,
    part=None,
):
    """Beam search over the cached decoder step; returns every beam, best first.

    The cross-attention keys and values are computed once per sentence and shared by
    its beams; so are the self-attention caches, where each hypothesis finds its
    earlier positions through a small table that follows the beams (`cache_slots`).
    Each step ranks only each beam's `beam_size` best tokens (`top_log_probabilities`).
    Finished beams stay in the beam, extended with padding at no cost; a hypothesis
    at its length limit can only end, and its score counts what [END] costs there (as
    greedy decoding's does), so a cut-off hypothesis does not outrank one that ended
    on its own for free. The final ranking divides each score by the GNMT length
    penalty with `length_penalty` as alpha.

    Args:
        model: a `Seq2SeqTransformer`, or a `DecodingStep` built from one.
        source_ids: int32 [batch, source_length], 0 for padding.
        suppress_end: never end before `max_output_length` (benchmarks force an
            exact length this way).
        static_shapes: output length `max_output_length` whatever the limits (for XLA).
        encoded: the step's `encode(source_ids)`, if already computed.
        part: a `decoding.cache.LoopPart`: run that cache block of the loop only, and
            return a `SearchPart` whose outputs are the tuple below.

    Returns:
        `(token_ids, scores)`: int32 [batch, beam_size, output_length] (ending with
        `[END]` then padding) and float32 [batch, beam_size] length-normalised
        log-probabilities, sorted best first.
    """
    step_fn = as_decoding_step(model)
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    cap, sentence_limits = decoding_limits(source_ids, max_output_length, step_fn.max_length, suppress_end)
    limits = tf.repeat(sentence_limits, beam_size)
    steps = tf.reduce_max(sentence_limits)
    encoded = encoded or step_fn.encode(source_ids)
    batch_offsets = tf.range(batch_size)[:, None] * beam_size

    def candidates_of(logits, step, row_limits, finished):
        """Each row's `beam_size` best next tokens and their log-probabilities, [rows, beam_size].

        Only these can enter the sentence's next beams (a row's other tokens score
        lower on the same prefix), so the step ranks beam_size x beam_size
        candidates per sentence instead of beam_size x vocabulary scores.
        """
        log_probabilities, ids, log_sum_exp = top_log_probabilities(logits, beam_size, END_ID if suppress_end else None)

        def only(token, log_probability, rows):
            """Where `rows`: `token` with `log_probability` first, the other candidates impossible."""
            forced_ids = tf.concat([tf.fill(tf.shape(ids[:, :1]), token), ids[:, 1:]], axis=1)
            impossible = tf.fill(tf.shape(log_probabilities[:, 1:]), -1e9)
            forced = tf.concat([log_probability[:, None], impossible], axis=1)
            return tf.where(rows, forced, log_probabilities), tf.where(rows, forced_ids, ids)

        if not suppress_end:
            # At its limit a hypothesis can only end, and pays what [END] costs there (as in greedy).
            at_limit = (step + 1 >= row_limits)[:, None]
            log_probabilities, ids = only(END_ID, logits[:, END_ID] - log_sum_exp, at_limit)
        # A finished hypothesis extends with padding, at no cost.
        log_probabilities, ids = only(PAD_ID, tf.zeros_like(log_sum_exp), finished[:, None])
        return log_probabilities, ids

    # From here on the beams share their sentence's self-attention cache: beam i writes
    # its keys and values in slot i, and `slots` tells which slot holds each position
    # of each hypothesis (see `MaskedMHA`'s `cache_slots`). When the beams are
    # reordered, only that table follows them, not the caches. The first step's keys
    # and values are slot 0, which every hypothesis starts from.
    own_slot = (tf.range(batch_size * beam_size) % beam_size)[:, None]

    def body(state):
        slots = ops.slice_update(state.slots, (0, state.step), own_slot)  # this step's position: the row's own slot
        logits, cache = step_fn(state.last_token, state.step, state.cache, encoded, cache_slots=slots)
        log_probabilities, ids = candidates_of(logits, state.step, limits, state.finished)
        candidates = state.scores[:, :, None] + tf.reshape(log_probabilities, [batch_size, beam_size, beam_size])
        # Ties go to the lower beam, then the lower token (each row's candidates are in that order).
        scores, flat_indices = tf.math.top_k(tf.reshape(candidates, [batch_size, beam_size * beam_size]), beam_size)
        origin = tf.reshape(flat_indices // beam_size + batch_offsets, [-1])
        next_token = tf.gather(tf.reshape(ids, [batch_size, beam_size * beam_size]), flat_indices, batch_dims=1)
        next_token = tf.reshape(next_token, [-1])
        written = tf.one_hot(state.step, cap, dtype=tf.int32)[None, :] * next_token[:, None]
        return BeamState(
            step=state.step + 1,
            last_token=next_token,
            tokens=tf.gather(state.tokens, origin) + written,
            scores=scores,
            finished=tf.gather(state.finished, origin) | tf.equal(next_token, END_ID),
            cache=cache,
            slots=tf.gather(slots, origin),
        )

    def condition(state):
        return tf.logical_and(state.step < steps, tf.logical_not(tf.reduce_all(state.finished)))

    def initial():
        # The first step runs on one row per sentence: every beam starts from the same
        # [START], so the beam_size best first tokens are the top of that one row (on one
        # sentence, a step of one row costs half a step of four).
        step = tf.constant(0)
        first_cache = step_fn.init_cache(batch_size, cache_block_sizes(cap)[0])
        logits, first_cache = step_fn(tf.fill([batch_size], START_ID), step, first_cache, encoded)
        scores, next_token = candidates_of(logits, step, sentence_limits, tf.zeros([batch_size], tf.bool))
        next_token = tf.reshape(next_token, [-1])
        return BeamState(
            step=step + 1,
            last_token=next_token,
            tokens=tf.one_hot(step, cap, dtype=tf.int32)[None, :] * next_token[:, None],
            scores=scores,
            finished=tf.equal(next_token, END_ID),
            cache=step_fn.share_cache(first_cache, beam_size),
            slots=tf.zeros([batch_size * beam_size, cache_block_sizes(cap)[0]], tf.int32),
        )

    def finish(final):
        tokens = final.tokens if static_shapes else final.tokens[:, :steps]
        tokens = tf.reshape(tokens, [batch_size, beam_size, tf.shape(tokens)[1]])
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(tokens, PAD_ID), tf.int32), axis=-1)
        normalised = final.scores / gnmt_length_penalty(lengths, length_penalty)
        order = tf.argsort(normalised, axis=-1, direction="DESCENDING")
        return tf.gather(tokens, order, batch_dims=1), tf.gather(normalised, order, batch_dims=1)

    return run_search_loop(condition, body, initial, beam_growth(beam_size), cap, finish, part)
