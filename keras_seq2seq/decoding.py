"""Autoregressive decoding over the cached decoder step: greedy, batched, exportable.

The encoder runs once per batch and its cross-attention keys and values are projected
once; each step feeds one new token per sentence through `Decoder.decode_step`, which
only computes the new position. Finished sentences emit padding; the loop ends when
every sentence has produced `[END]` or reached its length limit.
"""

import tensorflow as tf
from keras import ops

from keras_seq2seq.data.tokenizers import END_ID, PAD_ID, START_ID
from keras_seq2seq.layers import MaskedMHA

LENGTH_BUCKET = 16


def source_lengths(source_ids):
    """Real (non-padding) tokens per row of [batch, length] ids."""
    return tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)


def output_length_limits(source_ids, max_length, ratio=1.5, extra=10):
    """Per-sentence output limit: `ratio * source_length + extra`, at most `max_length`."""
    limits = tf.cast(tf.cast(source_lengths(source_ids), tf.float32) * ratio, tf.int32) + extra
    return tf.minimum(limits, max_length - 1)


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


def encode_for_decoding(model, source_ids):
    """`(cross_key_values, source_mask)`: the encoder run once and projected for every decoder block.

    The decoding functions compute this themselves; pass it as their `encoded`
    argument to encode elsewhere (the Translator encodes large batches with
    `encode_tokens_for_decoding`).
    """
    encoder_output, source_mask = model.encode(source_ids)
    return model.decoder.compute_cross_key_values(encoder_output), source_mask


def bucketed_token_count(count):
    """`count` (an int tensor) rounded up to a multiple of 64, or of an eighth of the power of two
    at or below it when larger: at most 12.5% more, and eight shapes per doubling for XLA to compile."""
    powers = tf.constant([2**exponent for exponent in range(31)])
    step = tf.maximum(64, tf.reduce_max(tf.where(powers <= count, powers, 1)) // 8)
    return (count + step - 1) // step * step


def token_positions(source_ids, bucketed=False):
    """The (row, column) of every real token of `source_ids` [batch, length], row by row: int32 [count, 2].

    `bucketed`: padded to `bucketed_token_count(count)` entries, the extra ones
    pointing at row `batch` (one past the last): `encode_tokens_for_decoding` adds
    that row, all padding, so they compute values nothing reads.
    """
    positions = tf.cast(tf.where(tf.not_equal(source_ids, PAD_ID)), tf.int32)
    if not bucketed:
        return positions
    count = tf.shape(positions)[0]
    extra = bucketed_token_count(count) - count
    spare = tf.stack([tf.shape(source_ids)[0], 0])
    return tf.concat([positions, tf.tile(spare[None], [extra, 1])], axis=0)


def encode_tokens_for_decoding(model, source_ids, positions):
    """`encode_for_decoding`, with the encoder run on the tokens at `positions` only (`Encoder.encode_tokens`).

    `positions` come from `token_positions(source_ids)`, bucketed or not. Same
    result as `encode_for_decoding` up to rounding, in less time when the batch
    holds much padding.
    """
    batch = tf.shape(source_ids)[0]
    source_ids = tf.pad(source_ids, [[0, 1], [0, 0]])  # row `batch`: the spare row of bucketed positions
    tokens, source_mask = model.encoder.encode_tokens(source_ids, positions)
    key_values = model.decoder.cross_key_values_of_tokens(tokens, positions, tf.shape(source_ids))
    return [tuple(part[:batch] for part in block) for block in key_values], source_mask[:batch]


def _grow(part, size, axis):
    """`part` padded with zeros to `size` along `axis` (its positions)."""
    padding = [[0, 0] for _ in part.shape]
    padding[axis][1] = size - part.shape[axis]
    return tf.pad(part, padding)


def _while_in_cache_blocks(condition, body, state, grown, positions):
    """`tf.while_loop(condition, body, state)` run block by block over `cache_block_sizes`.

    `state[0]` is the step (the cache position it writes); `grown` maps the index of
    each state entry that holds positions (caches, slot tables) to `(axis, entries
    per position)`: each tensor there grows along `axis` to the block's size times
    that (caches shared by groups hold one entry per slot and position). Blocks
    after the loop has ended run no step.
    """
    for size in cache_block_sizes(positions):
        state = list(state)
        for index, (axis, per_position) in grown.items():
            grow = lambda part, axis=axis, entries=size * per_position: _grow(part, entries, axis)
            state[index] = tf.nest.map_structure(grow, state[index])
        state = tf.while_loop(
            lambda *loop_state, size=size: tf.logical_and(loop_state[0] < size, condition(*loop_state)),
            body,
            tuple(state),
        )
    return state


def greedy_decode(
    model,
    source_ids,
    max_output_length=None,
    suppress_end=False,
    static_shapes=False,
    encoded=None,
    output_kernel=None,
):
    """Greedy translation ids of a batch of source ids.

    Args:
        model: a `Seq2SeqTransformer`.
        source_ids: int32 [batch, source_length], 0 for padding.
        max_output_length: overall cap on output tokens; defaults to the model's
            `max_length - 1`. Each sentence also stops at 1.5 x its length + 10.
        suppress_end: never emit `[END]` (benchmarks force an exact length this way).
        static_shapes: output length `max_output_length` whatever the limits (for XLA).
        encoded: `encode_for_decoding(model, source_ids)` if already computed.
        output_kernel: `model.decoder.output_kernel()` kept from an earlier call
            (the Translator stores it): the tied output projection then reads a
            [d_model, vocab] matrix, faster than the embedding's own layout when
            the weights come from memory rather than cache (12% per step on one
            sentence). None: the embedding as is.

    Returns:
        `(token_ids, scores)`: int32 [batch, output_length] without `[START]`, ending
        with `[END]` then padding; and the float32 sum of log-probabilities per sentence.
    """
    choose = lambda log_probabilities, step: tf.argmax(log_probabilities, axis=-1, output_type=tf.int32)
    return _decode(
        model, source_ids, choose, max_output_length, suppress_end, static_shapes, encoded, output_kernel
    )


def sample_decode(
    model,
    source_ids,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    max_output_length=None,
    static_shapes=False,
    encoded=None,
    output_kernel=None,
):
    """Sampled translations: like `greedy_decode`, drawing each token instead of taking the best.

    Args:
        temperature: divides the logits; below 1 sharpens, above 1 flattens (> 0).
        top_k: draw among the `top_k` most likely tokens only (0: all).
        top_p: draw among the smallest set of tokens whose probabilities add up to
            `top_p` (nucleus sampling; 1: all).
        seed: the same seed gives the same samples (stateless random ops).
        encoded, output_kernel: as for `greedy_decode`.

    Returns:
        `(token_ids, scores)` as `greedy_decode`; scores are the model's (untempered)
        log-probabilities of the drawn tokens.
    """
    for name, value, valid in (
        ("temperature", temperature, lambda v: v > 0),
        ("top_k", top_k, lambda v: v >= 0),
        ("top_p", top_p, lambda v: 0.0 < v <= 1.0),
    ):
        if isinstance(value, (int, float)) and not valid(value):
            raise ValueError(f"{name} is out of range, got {name}={value!r}")
    # Tensors too (the SavedModel's `sample` signature takes them as inputs).
    temperature = tf.cast(temperature, tf.float32)
    top_k = tf.cast(top_k, tf.int32)
    top_p = tf.cast(top_p, tf.float32)
    seed = tf.cast(seed, tf.int32)

    def choose(log_probabilities, step):
        logits = log_probabilities / temperature
        vocab_size = tf.shape(logits)[-1]
        kth_best = tf.math.top_k(logits, k=tf.where(top_k > 0, tf.minimum(top_k, vocab_size), vocab_size))
        logits = tf.where(logits < kth_best.values[:, -1:], -1e9, logits)
        sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
        cumulative = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
        # The lowest logit still inside the nucleus (the best token always is): everything below goes.
        cutoff = tf.reduce_min(tf.where(cumulative < top_p, sorted_logits, 1e9), axis=-1, keepdims=True)
        logits = tf.where((top_p < 1.0) & (logits < cutoff), -1e9, logits)
        draws = tf.random.stateless_categorical(logits, 1, seed=tf.stack([seed, step]), dtype=tf.int32)
        return draws[:, 0]

    return _decode(model, source_ids, choose, max_output_length, False, static_shapes, encoded, output_kernel)


def _decode(
    model, source_ids, choose, max_output_length, suppress_end, static_shapes=False, encoded=None, output_kernel=None
):
    """The cached decoding loop of `greedy_decode` and `sample_decode`; `choose` picks each token.

    With `static_shapes`, the output is [batch, max_output_length] whatever the
    sentences' limits (padding after `[END]`), so XLA can compile the loop; the cache
    grows in static blocks either way (`cache_block_sizes`).
    """
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    cap = max_output_length or model.max_length - 1
    limits = output_length_limits(source_ids, cap + 1)
    if suppress_end:
        limits = tf.fill([batch_size], cap)
    steps = tf.reduce_max(limits)

    cross_key_values, source_mask = encoded or encode_for_decoding(model, source_ids)
    cache = model.decoder.init_cache(batch_size, cache_block_sizes(cap)[0])
    end_penalty = tf.one_hot(END_ID, model.target_vocab_size, on_value=-1e9, off_value=0.0)

    def body(step, token, finished, scores, cache, output):
        logits, cache = model.decoder.decode_step(
            token[:, None], step, cache, cross_key_values, source_mask, output_kernel
        )
        log_probabilities = tf.nn.log_softmax(logits[:, 0])
        if suppress_end:
            log_probabilities += end_penalty
        next_token = choose(log_probabilities, step)
        # A sentence at its limit ends here.
        next_token = tf.where(step + 1 >= limits, END_ID, next_token) if not suppress_end else next_token
        next_token = tf.where(finished, PAD_ID, next_token)
        gained = tf.gather(log_probabilities, next_token, batch_dims=1)
        scores += tf.where(finished, 0.0, gained)
        finished = finished | tf.equal(next_token, END_ID)
        output += tf.one_hot(step, cap, dtype=tf.int32)[None, :] * next_token[:, None]
        return step + 1, next_token, finished, scores, cache, output

    def condition(step, token, finished, scores, cache, output):
        return tf.logical_and(step < steps, tf.logical_not(tf.reduce_all(finished)))

    initial = (
        tf.constant(0),
        tf.fill([batch_size], START_ID),
        tf.zeros([batch_size], tf.bool),
        tf.zeros([batch_size], tf.float32),
        cache,
        tf.zeros([batch_size, cap], tf.int32),
    )
    _, _, _, scores, _, output = _while_in_cache_blocks(condition, body, initial, {4: (-2, 1)}, cap)
    return (output if static_shapes else output[:, :steps]), scores


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
    only. XLA's top-k on CPU sorts: on beam search's [64, 4 x 8000] scores this is
    4x faster (0.7 ms against 3.1), with identical values and indices, ties included.
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


def _length_penalty(lengths, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016)."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def beam_search(
    model,
    source_ids,
    beam_size=4,
    length_penalty=0.6,
    max_output_length=None,
    suppress_end=False,
    static_shapes=False,
    encoded=None,
    output_kernel=None,
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
    penalty with `length_penalty` alpha.

    Args:
        suppress_end: never end before `max_output_length` (benchmarks force an
            exact length this way).
        static_shapes: output length `max_output_length` whatever the limits (for XLA).
        encoded: `encode_for_decoding(model, source_ids)` if already computed.
        output_kernel: `model.decoder.output_kernel()` if kept from an earlier call;
            None: computed here, once per batch.

    Returns:
        `(token_ids, scores)`: int32 [batch, beam_size, output_length] (ending with
        `[END]` then padding) and float32 [batch, beam_size] length-normalised
        log-probabilities, sorted best first.
    """
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    cap = max_output_length or model.max_length - 1
    sentence_limits = output_length_limits(source_ids, cap + 1)
    if suppress_end:
        sentence_limits = tf.fill([batch_size], cap)
    limits = tf.repeat(sentence_limits, beam_size)
    steps = tf.reduce_max(sentence_limits)

    cross_key_values, source_mask = encoded or encode_for_decoding(model, source_ids)
    # Steps of beam_size rows per sentence: the transposed output matrix pays off.
    if output_kernel is None:
        output_kernel = model.decoder.output_kernel()
    batch_offsets = tf.range(batch_size)[:, None] * beam_size

    def candidates_of(logits, step, row_limits, finished):
        """Each row's `beam_size` best next tokens and their log-probabilities, [rows, beam_size].

        Only these can enter the sentence's next beams (a row's other tokens score
        lower on the same prefix), so the step ranks beam_size x beam_size
        candidates per sentence instead of beam_size x vocabulary scores.
        """
        log_probabilities, ids, log_sum_exp = top_log_probabilities(
            logits[:, 0], beam_size, END_ID if suppress_end else None
        )
        def only(token, log_probability, rows):
            """Where `rows`: `token` with `log_probability` first, the other candidates impossible."""
            forced_ids = tf.concat([tf.fill(tf.shape(ids[:, :1]), token), ids[:, 1:]], axis=1)
            impossible = tf.fill(tf.shape(log_probabilities[:, 1:]), -1e9)
            forced = tf.concat([log_probability[:, None], impossible], axis=1)
            return tf.where(rows, forced, log_probabilities), tf.where(rows, forced_ids, ids)

        if not suppress_end:
            # At its limit a hypothesis can only end, and pays what [END] costs there (as in greedy).
            at_limit = (step + 1 >= row_limits)[:, None]
            log_probabilities, ids = only(END_ID, logits[:, 0, END_ID] - log_sum_exp, at_limit)
        # A finished hypothesis extends with padding, at no cost.
        log_probabilities, ids = only(PAD_ID, tf.zeros_like(log_sum_exp), finished[:, None])
        return log_probabilities, ids

    # The first step runs on one row per sentence: every beam starts from the same
    # [START], so the beam_size best first tokens are the top of that one row (on one
    # sentence, a step of one row costs half a step of four). The cross-attention keys
    # and values stay one per sentence, shared by its beams (`CrossMHA`'s groups).
    step = tf.constant(0)
    logits, cache = model.decoder.decode_step(
        tf.fill([batch_size, 1], START_ID), step, model.decoder.init_cache(batch_size, cache_block_sizes(cap)[0]),
        cross_key_values, source_mask, output_kernel,
    )
    scores, next_token = candidates_of(logits, step, sentence_limits, tf.zeros([batch_size], tf.bool))
    next_token = tf.reshape(next_token, [-1])
    # The self-attention caches are shared by each sentence's beams too: beam i writes
    # its keys and values in slot i, and `slots` [rows, positions] tells which slot
    # holds each position of each hypothesis (see `MaskedMHA`'s `cache_slots`). When
    # the beams are reordered, only that table follows them: gathering the caches
    # themselves (and the copy XLA adds to each gather) took 40% of a step at 128 tokens.
    # The first step's keys and values go to slot 0, which every hypothesis starts from.
    cache = [tuple(MaskedMHA.shared_cache(part, beam_size) for part in block) for block in cache]
    slots = tf.zeros([batch_size * beam_size, cache_block_sizes(cap)[0]], tf.int32)
    own_slot = (tf.range(batch_size * beam_size) % beam_size)[:, None]
    tokens = tf.one_hot(step, cap, dtype=tf.int32)[None, :] * next_token[:, None]

    def body(step, last_token, tokens, scores, finished, cache, slots):
        slots = ops.slice_update(slots, (0, step), own_slot)  # this step's position: each row's own slot
        logits, cache = model.decoder.decode_step(
            last_token[:, None], step, cache, cross_key_values, source_mask, output_kernel, cache_slots=slots
        )
        log_probabilities, ids = candidates_of(logits, step, limits, finished)
        candidates = scores[:, :, None] + tf.reshape(log_probabilities, [batch_size, beam_size, beam_size])
        # Ties go to the lower beam, then the lower token (each row's candidates are in that order).
        scores, flat_indices = tf.math.top_k(tf.reshape(candidates, [batch_size, beam_size * beam_size]), beam_size)
        origin = tf.reshape(flat_indices // beam_size + batch_offsets, [-1])
        next_token = tf.gather(tf.reshape(ids, [batch_size, beam_size * beam_size]), flat_indices, batch_dims=1)
        next_token = tf.reshape(next_token, [-1])
        slots = tf.gather(slots, origin)
        tokens = tf.gather(tokens, origin) + tf.one_hot(step, cap, dtype=tf.int32)[None, :] * next_token[:, None]
        finished = tf.gather(finished, origin) | tf.equal(next_token, END_ID)
        return step + 1, next_token, tokens, scores, finished, cache, slots

    def condition(step, last_token, tokens, scores, finished, cache, slots):
        return tf.logical_and(step < steps, tf.logical_not(tf.reduce_all(finished)))

    initial = (step + 1, next_token, tokens, scores, tf.equal(next_token, END_ID), cache, slots)
    grown = {5: (-2, beam_size), 6: (-1, 1)}
    _, _, tokens, scores, _, _, _ = _while_in_cache_blocks(condition, body, initial, grown, cap)
    if not static_shapes:
        tokens = tokens[:, :steps]
    tokens = tf.reshape(tokens, [batch_size, beam_size, tf.shape(tokens)[1]])
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(tokens, PAD_ID), tf.int32), axis=-1)
    normalised = scores / _length_penalty(lengths, length_penalty)
    order = tf.argsort(normalised, axis=-1, direction="DESCENDING")
    return tf.gather(tokens, order, batch_dims=1), tf.gather(normalised, order, batch_dims=1)
