"""Autoregressive decoding over the cached decoder step: greedy, sampled and beam search.

The encoder runs once per batch and its cross-attention keys and values are projected
once; each step feeds one new token per hypothesis through a `DecodingStep`, which only
computes the new position. Finished sentences emit padding; a loop ends when every
sentence has produced `[END]` or reached its length limit. The loops are TensorFlow
`while_loop`s that compile with XLA; their state is a NamedTuple (`GreedyState`,
`BeamState`) whose cached fields grow in static blocks (`while_in_cache_blocks`); given a
`LoopPart`, a search runs one block and returns its state, so a caller can run each block
as a program of its own (the `Translator` does).

    length     output limits, length buckets, cache sizes, the length penalty
    cache      loops over growing caches
    step       DecodingStep: the model as the searches see it (tokens -> logits)
    greedy     greedy_decode, sample_decode
    beam       beam_search and its top-k helpers
    xla_cpu    XlaCpuStep, StepWeights, the packed encoder: the serving path's speed-ups
"""

from keras_seq2seq.decoding.beam import BeamState, beam_search, blocked_top_k, top_log_probabilities
from keras_seq2seq.decoding.cache import LoopPart, SearchPart, while_in_cache_blocks
from keras_seq2seq.decoding.greedy import GreedyState, greedy_decode, sample_decode
from keras_seq2seq.decoding.length import (
    LENGTH_BUCKET,
    bucketed_length,
    cache_block_sizes,
    length_penalty,
    output_length_limits,
    source_lengths,
)
from keras_seq2seq.decoding.step import DecodingStep, Encoded, SharedStep, as_decoding_step

__all__ = [
    "LENGTH_BUCKET",
    "BeamState",
    "DecodingStep",
    "Encoded",
    "SharedStep",
    "GreedyState",
    "LoopPart",
    "SearchPart",
    "as_decoding_step",
    "beam_search",
    "blocked_top_k",
    "bucketed_length",
    "cache_block_sizes",
    "greedy_decode",
    "length_penalty",
    "output_length_limits",
    "sample_decode",
    "source_lengths",
    "top_log_probabilities",
    "while_in_cache_blocks",
]
