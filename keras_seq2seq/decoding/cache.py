"""Loops whose state holds self-attention caches that grow in static blocks."""

import tensorflow as tf

from keras_seq2seq.decoding.length import cache_block_sizes


def grow(part, size, axis):
    """`part` padded with zeros to `size` along `axis` (its positions)."""
    padding = [[0, 0] for _ in part.shape]
    padding[axis][1] = size - part.shape[axis]
    return tf.pad(part, padding)


def while_in_cache_blocks(condition, body, state, growth, positions):
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

    Blocks after the loop has ended run no step.
    """
    for size in cache_block_sizes(positions):
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
