"""The decoder as the searches see it: a step function built once from a model."""

from typing import NamedTuple

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


def as_decoding_step(model_or_step):
    """`model_or_step` if it is a `DecodingStep`, else the portable step of that model."""
    return model_or_step if isinstance(model_or_step, DecodingStep) else DecodingStep(model_or_step)

