"""The decoder as the searches see it: a step function built once from a model."""

import contextlib
from typing import NamedTuple

import keras
import tensorflow as tf

from keras_seq2seq.layers import MaskedMHA


class Encoded(NamedTuple):
    """What the decoder reads of a batch of sources, computed once per batch.

    cross_key_values: one `(keys, values)` per decoder block, each [sources, heads,
        source_length, head_dim] (`CrossMHA.compute_key_value`).
    source_mask: bool [sources, source_length], True at real tokens.
    """

    cross_key_values: list
    source_mask: object


class DecodingStep:
    """`tokens_to_logits` over a self-attention cache, for the searches (`greedy_decode`, `beam_search`).

    The portable step: it runs the model's own layers (`Decoder.decode_step`), on any
    Keras backend ops the searches' TensorFlow loops can call. A search never reaches
    into the decoder: everything it needs of the model is here. Subclasses change how
    a step is computed, not what (`xla_cpu.XlaCpuStep`).

    Args:
        model: a `Seq2SeqTransformer`.
    """

    def __init__(self, model):
        self.model = model
        self.vocab_size = model.config.target_vocab_size
        self.max_length = model.config.max_length

    def encode(self, source_ids):
        """The encoder run once and projected for every decoder block's cross-attention: `Encoded`."""
        encoder_output, source_mask = self.model.encode(source_ids)
        return Encoded(self.model.decoder.compute_cross_key_values(encoder_output), source_mask)

    def init_cache(self, batch_size, length):
        """Empty self-attention caches for `length` positions, one row each (`Decoder.init_cache`)."""
        return self.model.decoder.init_cache(batch_size, length)

    @staticmethod
    def share_cache(cache, group_size):
        """A one-row-each cache as slot 0 of caches shared by groups of `group_size` rows (see `cache_slots`)."""
        return [tuple(MaskedMHA.shared_cache(part, group_size) for part in block) for block in cache]

    def __call__(self, token_ids, step, cache, encoded, cache_slots=None):
        """Next-token logits of each row, given the caches of the earlier positions.

        Args:
            token_ids: int [rows], the token at position `step` of each row.
            step: int scalar, the position being written.
            cache: from `init_cache` (or `share_cache`) or the previous step.
            encoded: `Encoded`; one source may serve a group of consecutive rows
                (a sentence's beams: `sources` sources for `sources * group` rows).
            cache_slots: for shared caches, int [rows, cache positions]: which slot of
                its group holds each position of each row (see `MaskedMHA`).

        Returns:
            `(logits, cache)`: float32 [rows, vocab_size] and the updated caches.
        """
        logits, cache = self.model.decoder.decode_step(
            token_ids[:, None], step, cache, encoded.cross_key_values, encoded.source_mask, cache_slots=cache_slots
        )
        return logits[:, 0], cache


class SharedStep(DecodingStep):
    """`step`, with its decoder step run as a `tf.function` traced once for every shape.

    A search traces its step once per loop (`while_in_cache_blocks` runs one loop per
    cache size), and a `Translator` traces several searches: each trace is a copy of the
    whole decoder in the graph. Called through `SharedStep`, every loop calls one
    function instead (two: with and without `cache_slots`), traced with every dimension
    unknown; XLA still compiles each call site for its shapes. A SavedModel of the
    `Translator` is then a fraction of the size, and loads in a fraction of the time and
    memory (loading rebuilds every function of the graph in Python). The computation is
    the same, op for op.

    Args:
        step: a `DecodingStep` (or subclass).
    """

    def __init__(self, step):
        self.step = step
        self.model, self.vocab_size, self.max_length = step.model, step.vocab_size, step.max_length
        self._functions = {}
        self._binding = None

    def encode(self, source_ids):
        return self.step.encode(source_ids)

    def encode_tokens(self, source_ids, positions):
        return self.step.encode_tokens(source_ids, positions)

    def init_cache(self, batch_size, length):
        return self.step.init_cache(batch_size, length)

    def share_cache(self, cache, group_size):
        return self.step.share_cache(cache, group_size)

    @contextlib.contextmanager
    def bound(self, variables, values, step_weights=None):
        """Within (while a search is traced): the step computes with `values` in place of the
        model's `variables` (`keras.StatelessScope`), and with `step_weights` in place of an
        `XlaCpuStep`'s own. They reach the step function as arguments: a function called from
        several graphs cannot capture a tensor of one of them. (Dequantized weights:
        `serving.quantization`.)"""
        previous, self._binding = self._binding, (variables, values, step_weights)
        try:
            yield
        finally:
            self._binding = previous

    def __call__(self, token_ids, step, cache, encoded, cache_slots=None):
        arguments = [token_ids, step, cache, encoded] + ([] if cache_slots is None else [cache_slots])
        binding = self._binding
        if binding is not None:
            variables, values, step_weights = binding
            arguments.append([values, [] if step_weights is None else _flat_step_weights(step_weights)])
        arguments = tf.nest.map_structure(tf.convert_to_tensor, arguments)
        key = (cache_slots is not None, binding is not None)
        if key not in self._functions:
            relaxed = lambda tensor: tf.TensorSpec([None] * tensor.shape.rank, tensor.dtype)
            signature = tf.nest.map_structure(relaxed, arguments[: len(arguments) - (binding is not None)])
            if binding is not None:  # weights: their own shapes
                signature.append(tf.nest.map_structure(tf.TensorSpec.from_tensor, arguments[-1]))
            body = self._body(binding)
            body.__name__ = "decoder_step" + ("_slotted" if cache_slots is not None else "")  # its name in a graph
            self._functions[key] = tf.function(body, input_signature=signature)
        logits, new_cache = self._functions[key](*arguments)
        # The function's outputs have unknown shapes: give back the ones the loops carry.
        logits.set_shape([token_ids.shape[0], self.vocab_size])
        for new, old in zip(tf.nest.flatten(new_cache), tf.nest.flatten(cache)):
            new.set_shape(old.shape)
        return logits, new_cache

    def _body(self, binding):
        if binding is None:
            def body(*given):
                return self.step(*given)

            return body
        variables, _, step_weights = binding

        def body(*given):
            *given, (values, copies) = given
            scope = keras.StatelessScope(state_mapping=list(zip(variables, values))) if variables else None
            with scope or contextlib.nullcontext():
                if step_weights is None:
                    return self.step(*given)
                with self.step.using(_unflat_step_weights(step_weights, copies)):
                    return self.step(*given)

        return body


def _flat_step_weights(step_weights):
    return [leaf for leaf in tf.nest.flatten(step_weights.structure()) if leaf is not None]


def _unflat_step_weights(template, flat):
    """A copy of `template` (a `StepWeights`) holding the tensors `flat` (`_flat_step_weights`)."""
    structure = template.structure()
    given = iter(flat)
    leaves = [None if leaf is None else next(given) for leaf in tf.nest.flatten(structure)]
    return type(template).from_structure(tf.nest.pack_sequence_as(structure, leaves))


def as_decoding_step(model_or_step):
    """`model_or_step` if it is a `DecodingStep`, else the portable step of that model."""
    return model_or_step if isinstance(model_or_step, DecodingStep) else DecodingStep(model_or_step)

