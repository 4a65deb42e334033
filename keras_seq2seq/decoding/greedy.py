"""Greedy and sampled decoding: one cached loop, one token per sentence per step."""

from typing import NamedTuple

import tensorflow as tf

from keras_seq2seq.data.tokenizers import END_ID, PAD_ID, START_ID
from keras_seq2seq.decoding.cache import run_search_loop
from keras_seq2seq.decoding.length import cache_block_sizes, decoding_limits
from keras_seq2seq.decoding.step import as_decoding_step


class GreedyState(NamedTuple):
    """The loop state of `greedy_decode` and `sample_decode`."""

    step: tf.Tensor  # int32 [], the position the next step writes
    token: tf.Tensor  # int32 [batch], each sentence's last token
    finished: tf.Tensor  # bool [batch], [END] emitted (or the limit reached)
    scores: tf.Tensor  # float32 [batch], summed log-probabilities of the emitted tokens
    cache: list  # per block (keys, values), [batch, heads, positions, head_dim]
    output: tf.Tensor  # int32 [batch, max_output_length], the tokens so far, then zeros


GREEDY_GROWTH = {"cache": (-2, 1)}


def greedy_decode(
    model, source_ids, max_output_length=None, suppress_end=False, static_shapes=False, encoded=None, part=None
):
    """Greedy translation ids of a batch of source ids.

    Args:
        model: a `Seq2SeqTransformer`, or a `DecodingStep` built from one (such as
            `xla_cpu.XlaCpuStep`).
        source_ids: int32 [batch, source_length], 0 for padding.
        max_output_length: overall cap on output tokens; defaults to the model's
            `max_length - 1`. Each sentence also stops at 1.5 x its length + 10.
        suppress_end: never emit `[END]` (benchmarks force an exact length this way).
        static_shapes: output length `max_output_length` whatever the limits (for XLA).
        encoded: the step's `encode(source_ids)`, if already computed.
        part: a `decoding.cache.LoopPart`: run that cache block of the loop only, and
            return a `SearchPart` whose outputs are the tuple below.

    Returns:
        `(token_ids, scores)`: int32 [batch, output_length] without `[START]`, ending
        with `[END]` then padding; and the float32 sum of log-probabilities per sentence.
    """
    choose = lambda log_probabilities, step: tf.argmax(log_probabilities, axis=-1, output_type=tf.int32)
    return _decode(model, source_ids, choose, max_output_length, suppress_end, static_shapes, encoded, part)


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
    part=None,
):
    """Sampled translations: like `greedy_decode`, drawing each token instead of taking the best.

    Args:
        temperature: divides the logits; below 1 sharpens, above 1 flattens (> 0).
        top_k: draw among the `top_k` most likely tokens only (0: all).
        top_p: draw among the smallest set of tokens whose probabilities add up to
            `top_p` (nucleus sampling; 1: all).
        seed: the same seed gives the same samples (stateless random ops).
        The others: as for `greedy_decode`.

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

    return _decode(model, source_ids, choose, max_output_length, False, static_shapes, encoded, part)


def _decode(model, source_ids, choose, max_output_length, suppress_end, static_shapes, encoded, part):
    """The cached decoding loop of `greedy_decode` and `sample_decode`; `choose` picks each token.

    With `static_shapes`, the output is [batch, max_output_length] whatever the
    sentences' limits (padding after `[END]`), so XLA can compile the loop; the cache
    grows in static blocks either way (`cache_block_sizes`).
    """
    step_fn = as_decoding_step(model)
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    cap, limits = decoding_limits(source_ids, max_output_length, step_fn.max_length, suppress_end)
    steps = tf.reduce_max(limits)
    encoded = encoded or step_fn.encode(source_ids)
    end_penalty = tf.one_hot(END_ID, step_fn.vocab_size, on_value=-1e9, off_value=0.0)

    def body(state):
        logits, cache = step_fn(state.token, state.step, state.cache, encoded)
        log_probabilities = tf.nn.log_softmax(logits)
        if suppress_end:
            log_probabilities += end_penalty
        next_token = choose(log_probabilities, state.step)
        if not suppress_end:  # a sentence at its limit ends here
            next_token = tf.where(state.step + 1 >= limits, END_ID, next_token)
        next_token = tf.where(state.finished, PAD_ID, next_token)
        gained = tf.gather(log_probabilities, next_token, batch_dims=1)
        return GreedyState(
            step=state.step + 1,
            token=next_token,
            finished=state.finished | tf.equal(next_token, END_ID),
            scores=state.scores + tf.where(state.finished, 0.0, gained),
            cache=cache,
            output=state.output + tf.one_hot(state.step, cap, dtype=tf.int32)[None, :] * next_token[:, None],
        )

    def condition(state):
        return tf.logical_and(state.step < steps, tf.logical_not(tf.reduce_all(state.finished)))

    def initial():
        return GreedyState(
            step=tf.constant(0),
            token=tf.fill([batch_size], START_ID),
            finished=tf.zeros([batch_size], tf.bool),
            scores=tf.zeros([batch_size], tf.float32),
            cache=step_fn.init_cache(batch_size, cache_block_sizes(cap)[0]),
            output=tf.zeros([batch_size, cap], tf.int32),
        )

    def finish(final):
        return (final.output if static_shapes else final.output[:, :steps]), final.scores

    return run_search_loop(condition, body, initial, GREEDY_GROWTH, cap, finish, part)
