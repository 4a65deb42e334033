"""Loops whose state holds self-attention caches that grow in static blocks."""

from typing import NamedTuple

import tensorflow as tf

from keras_seq2seq.decoding.length import cache_block_sizes


class LoopPart(NamedTuple):
    """One cache block of a search's loop, to run a search as one program per block.

    A search given a `LoopPart` runs block `block` of `cache_block_sizes` only (an
    index: a Python int, or an int32 scalar tensor that XLA then takes as a compile-time
    constant): from its initial state when `state` is None, else from `state`, the loop
    state the part before returned. It then returns a `SearchPart`. (The `Translator`
    runs each part as its own XLA program, the next one only while the loop goes on: a
    batch whose translations end early never runs, nor holds memory for, the larger caches.)
    """

    block: object
    state: object = None


class SearchPart(NamedTuple):
    """What a search run on a `LoopPart` returns.

    outputs: the search's outputs, as if the loop had ended with this part.
    state: the loop state after the part (for the next `LoopPart`).
    running: bool [], whether the loop goes on (the next part has steps to run).
    """

    outputs: tuple
    state: object
    running: tf.Tensor


def grow(part, size, axis):
    """`part` padded with zeros to `size` (an int, or an int32 tensor) along `axis` (its positions)."""
    current = part.shape[axis]
    if current is None or not isinstance(size, int):
        current = tf.shape(part)[axis]
    padding = [[0, 0] for _ in part.shape]
    padding[axis][1] = size - current
    return tf.pad(part, padding)


def while_in_cache_blocks(condition, body, state, growth, positions, block=None):
    """`tf.while_loop(condition, body, state)`, run block by block over `cache_block_sizes(positions)`.

    Args:
        condition, body: functions of the loop state (a NamedTuple whose field `step` is
            the position the next step writes); `body` returns the next state.
        state: the initial state.
        growth: `{field: (axis, entries per position)}` for each field holding positions
            (caches, slot tables): before each block, every tensor of that field grows
            along `axis` to the block's size times its entries per position (a cache
            shared by a group of rows holds one entry per slot and position).
        positions: the most positions the loop may write.
        block: the index of the one block to run (an int or an int32 scalar tensor; default: all).

    Blocks after the loop has ended run no step.
    """
    sizes = cache_block_sizes(positions)
    if block is not None:
        sizes = [sizes[block] if isinstance(block, int) else tf.gather(sizes, block)]
    for size in sizes:
        grown = {
            field: tf.nest.map_structure(lambda part, a=axis, n=size * entries: grow(part, n, a), getattr(state, field))
            for field, (axis, entries) in growth.items()
        }
        state = state._replace(**grown)
        (state,) = tf.while_loop(
            lambda loop_state, size=size: tf.logical_and(loop_state.step < size, condition(loop_state)),
            lambda loop_state: (body(loop_state),),
            (state,),
        )
    return state


def run_search_loop(condition, body, initial, growth, positions, finish, part=None):
    """A search's loop and its outputs: `finish(final state)`, or a `SearchPart` for a `LoopPart`.

    `initial` is a function returning the initial state (called unless `part` resumes
    from a state); the other arguments are `while_in_cache_blocks`'.
    """
    if part is None:
        return finish(while_in_cache_blocks(condition, body, initial(), growth, positions))
    state = initial() if part.state is None else part.state
    final = while_in_cache_blocks(condition, body, state, growth, positions, block=part.block)
    return SearchPart(finish(final), final, condition(final))
