"""The Translator: strings in, strings out, tokenizers and decode loop included.

Any input string yields an output string: invalid UTF-8 bytes are replaced by U+FFFD,
sources longer than the model's `max_length` tokens are truncated to it, and a source that
is empty or blank (no token once normalised) gets an empty translation with score 0, in
every signature (the beam search's n-best too).
"""

import contextlib
import functools
from collections.abc import Callable
from typing import NamedTuple

import keras
import tensorflow as tf

from keras_seq2seq.data.tokenizers import PAD_ID
from keras_seq2seq.decoding import (
    DecodingStep,
    Encoded,
    LoopPart,
    SharedStep,
    beam_search,
    bucketed_length,
    cache_block_sizes,
    greedy_decode,
    sample_decode,
)
from keras_seq2seq.decoding.xla_cpu import StepWeights, XlaCpuStep, token_positions
from keras_seq2seq.serving.prepared import PreparedWeights
from keras_seq2seq.serving.quantization import DequantizedWeights, float_twin, is_quantized, quantize_model

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
ONE_CALL_ROWS = 16
_IDS = tf.TensorSpec([None, None], tf.int32, name="source_ids")
_MASK = tf.TensorSpec([None, None], tf.bool, name="source_mask")
_POSITIONS = tf.TensorSpec([None, 2], tf.int32, name="token_positions")


def _bucketed_batch(source_ids):
    """Pads a batch of ids with empty rows and columns up to its (batch, length) bucket.

    Batches grow to 1, 2, 4, ... 64 rows, then to multiples of 64; sources to a
    multiple of 16 tokens. XLA compiles the decoder once per bucket, so a server sees
    a few dozen shapes at most instead of one per request. Padding changes no output
    (padded keys are masked; empty rows are dropped afterwards).
    """
    batch_size, length = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
    buckets = tf.constant(BATCH_BUCKETS)
    index = tf.minimum(tf.searchsorted(buckets, [batch_size], side="left")[0], len(BATCH_BUCKETS) - 1)
    largest = BATCH_BUCKETS[-1]
    rows = tf.where(batch_size <= largest, tf.gather(buckets, index), (batch_size + largest - 1) // largest * largest)
    columns = bucketed_length(length)
    return tf.pad(source_ids, [[0, rows - batch_size], [0, columns - length]])


def _where_rows(rows, fill, values):
    """`values` [batch, ...] with the rows where `rows` [batch] is True replaced by `fill(values)`."""
    rows = tf.reshape(rows, tf.concat([tf.shape(rows), tf.ones([tf.rank(values) - 1], tf.int32)], axis=0))
    return tf.where(rows, fill(values), values)


class _PartedSearch(NamedTuple):
    """A search run in parts (`Translator._parts`).

    first_from_ids: (ids, *extra) -> (the first `SearchPart`, keys and values, source mask).
    first: (ids, keys and values, source mask, *extra) -> the first `SearchPart`.
    rest: (a first `SearchPart`, (ids, keys and values, source mask, *extra)) -> the search's outputs.
    """

    first_from_ids: Callable
    first: Callable
    rest: Callable


def _traced_once(function, jit_compile):
    """`function` as a `tf.function` traced once, at its first call, with every dimension of
    every argument unknown (the arguments: tensors, in any nest)."""
    compiled = []

    def call(*arguments):
        if not compiled:
            relaxed = lambda tensor: tf.TensorSpec([None] * tensor.shape.rank, tensor.dtype)
            signature = tf.nest.map_structure(relaxed, list(arguments))
            compiled.append(tf.function(function, input_signature=signature, jit_compile=jit_compile))
        return compiled[0](*arguments)

    return call


@contextlib.contextmanager
def run_eagerly():
    """Within: a `Translator`'s calls run op by op, nothing traced or compiled.

    From a fresh process, compiling the searches (seconds per program and batch shape)
    costs more than it saves on a few sentences: the command line translates up to
    `cli.EAGER_SENTENCES` sentences this way. Build the Translator with `jit_compile=False`
    (the portable `DecodingStep`); it computes what the compiled one computes, 2 to 3 times
    slower per batch once compiled. (`tf.config.run_functions_eagerly`, restored on exit.)
    """
    previous = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(previous)


class Translator(tf.Module):
    """Tokenize -> encode -> cached decode -> detokenize, for a batch of strings.

    The encoder and the decoding loops are XLA-compiled functions, called on batches
    padded to a few bucket shapes; tokenizing and detokenizing run around them as
    ordinary TensorFlow ops. The first batch of each new bucket pays a compilation (a
    few seconds); later ones reuse it.

    The searches run in parts, one compiled function per cache block, each only when the
    one before leaves steps to run (`_parts`). A batch of at most 16 sentences is encoded in
    the call of the first part (a call's fixed cost matters most for small batches). A
    larger batch is encoded first, on its real tokens only (`decoding.xla_cpu.encode_tokens`:
    all layers but attention skip the padding, half of the positions of 64 Tatoeba
    sentences; their count is rounded up by `bucketed_token_count` so XLA sees few shapes).

    With XLA, decoding steps run through `decoding.xla_cpu.XlaCpuStep`, which reads
    copies of the decoder's matrices (`StepWeights`) made from the weights when the
    Translator is built: after changing the model's weights, build a new Translator
    (or pass `step_copies=False`). Otherwise the searches run the model's own layers
    (`DecodingStep`). The copies, like an int8 model's float values, are
    `PreparedWeights`: an export stores one-element placeholders, and a SavedModel computes
    them while it loads (the float export is the size of the model's weights).

    Args:
        model: a trained `Seq2SeqTransformer`.
        source_tokenizer, target_tokenizer: keras-hub SentencePiece tokenizers.
        beam_size, length_penalty: what the `beam_search` signature uses.
        jit_compile: compile the decoding loops with XLA (False: plain TensorFlow
            graph, slower, for runtimes without XLA).
        step_copies: with XLA, decode through `StepWeights` (False: read the layers'
            weights at every call, which may change between calls, as in training).
        force_output_length: benchmarks only: every output is exactly this many
            tokens (`[END]` is suppressed).
        quantize: "int8": keep int8 weights (`quantize_model`, Keras' own int8
            quantization of the Dense and Embedding weights) and decode with them,
            dequantized once per process (`serving.quantization`); an export then stores
            the int8 weights only. A model that is already quantized is served so
            without this argument.
    """

    def __init__(
        self,
        model,
        source_tokenizer,
        target_tokenizer,
        beam_size=4,
        length_penalty=0.6,
        jit_compile=True,
        step_copies=True,
        force_output_length=None,
        quantize=None,
        name="translator",
    ):
        super().__init__(name=name)
        self.quantized_model, self._dequantized = None, None
        if quantize is not None or is_quantized(model):
            if is_quantized(model):  # a quantized model (a quantized export loaded back into Keras)
                self.quantized_model, model = model, float_twin(model)
            else:
                self.quantized_model = quantize_model(model, quantize)
            self._dequantized = DequantizedWeights(model, self.quantized_model)
        self.model = model
        # The dequantized variables each function reads: the encoder functions the encoder's and the
        # cross-attention's key and value projections (they compute the keys and values once), the
        # searches' steps the rest of the decoder's. A loaded function's call passes every variable it
        # reads, and its graph holds a read of each (`PreparedWeights.read`): each reads its own.
        self._variables = {"encoder": [], "decoder": []}
        if self._dequantized is not None:
            projections = [block.cross_attention._key_value_dense for block in model.decoder.blocks]
            cross = {id(variable) for layer in projections for variable in layer.weights}
            decoder = {id(variable) for variable in model.decoder.weights} - cross
            for variable in self._dequantized.variables:
                self._variables["decoder" if id(variable) in decoder else "encoder"].append(variable)
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.max_output_length = force_output_length or model.config.max_length - 1
        self.suppress_end = force_output_length is not None
        step_copies = jit_compile and step_copies
        # What the searches read besides the stored weights (`PreparedWeights`: computed now,
        # stored empty by an export, computed again when the SavedModel loads).
        self.prepared = None
        if step_copies or self._dequantized is not None:
            self.prepared = PreparedWeights(functools.partial(self._prepare, step_copies))
        # One decoder-step function for every loop of every search (`SharedStep`).
        self._step = SharedStep(XlaCpuStep(model, None) if step_copies else DecodingStep(model))
        compile_ = lambda function, signature: tf.function(
            self._on_weights(function, "encoder"), input_signature=signature, jit_compile=jit_compile,
            reduce_retracing=False,
        )
        self._encode_tokens = compile_(self._encode, [_IDS, _POSITIONS])
        self._encode_ids = compile_(self._encode_padded, [_IDS])
        self._greedy_search = self._parts(jit_compile, self._greedy)
        self._beam_search = self._parts(jit_compile, self._beam)
        self._sample_search = self._parts(jit_compile, self._sample)

    def _prepare(self, step_copies):
        """`{"encoder": [...], "decoder": [...], "copies": ...}`: the float value of each of the
        model's variables (quantized; else `[]`), by the side they belong to (as `_variables`), and
        the `StepWeights` copies made from them, as their `structure()` (or None)."""
        values = {"encoder": [], "decoder": []}
        if self._dequantized is not None:
            side = {id(variable): key for key, variables in self._variables.items() for variable in variables}
            for variable, value in zip(self._dequantized.variables, self._dequantized.values(), strict=True):
                values[side[id(variable)]].append(value)
        copies = None
        if step_copies:
            with self._weights_scope(sum(self._variables.values(), []), sum(values.values(), [])):
                copies = StepWeights.from_model(self.model, as_variables=False).structure()
        return {**values, "copies": copies}

    def _weights_scope(self, variables, values):
        if not variables:
            return contextlib.nullcontext()
        return keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True)))

    @property
    def step_weights(self):
        """The `StepWeights` the decoding steps read (eagerly: their current values), or None without them."""
        if self.prepared is None or not isinstance(self._step.step, XlaCpuStep):
            return None
        return StepWeights.from_structure(self.prepared.read(["copies"])["copies"])

    def _on_weights(self, function, side):
        """`function`, run on the `PreparedWeights` it needs (read once per call, passed to every step):
        the dequantized values of `side`'s variables (of `_variables`), and for the "decoder" side (the
        searches) the step copies."""
        keys = [side] + (["copies"] if side == "decoder" and isinstance(self._step.step, XlaCpuStep) else [])
        if self.prepared is None or not (self._variables[side] or "copies" in keys):
            return function
        variables = self._variables[side]

        def run(*arguments):
            prepared = self.prepared.read(keys)
            copies = StepWeights.from_structure(prepared["copies"]) if "copies" in keys else None
            with self._weights_scope(variables, prepared[side]), self._step.bound(variables, prepared[side], copies):
                return function(*arguments)

        return functools.wraps(function)(run)

    def _encode(self, source_ids, positions):
        if isinstance(self._step.step, XlaCpuStep):
            return self._step.encode_tokens(source_ids, positions).cross_key_values
        return self._step.encode(source_ids).cross_key_values

    def _encode_padded(self, source_ids):
        encoded = self._step.encode(source_ids)
        return encoded.cross_key_values, encoded.source_mask

    def _parts(self, jit_compile, search):
        """`search` (a function of ids, keys and values, mask, *extra, part) as a `_PartedSearch`.

        Its loop runs as a chain of functions, one per cache block (`decoding.cache.LoopPart`):
        the first (from ids: with the padded encoder) always runs, each later one only while
        the loop goes on (a `tf.while_loop` of the calling graph). With XLA, each function is a
        program: XLA gives a program working memory for its largest cache, whether a call
        reaches it or not (as one program, a beam search of 64 short sentences held the
        caches of 127 positions: 201 MB); split, a call runs, and first compiles, only the
        blocks its translations reach. Each function is traced once, its shapes left open
        (XLA compiles it per shape, the block index a compile-time constant), and called from
        as few places as can be: loading a SavedModel copies a function's callees into each
        caller's graph (benchmarks/README.md).
        """
        name = search.__name__.strip("_")

        def first(source_ids, key_values, source_mask, *args):
            return search(source_ids, key_values, source_mask, *args, part=LoopPart(0))

        def first_from_ids(source_ids, *args):
            key_values, source_mask = self._encode_ids(source_ids)
            return first_part(source_ids, key_values, source_mask, *args), key_values, source_mask

        def later(block, state, *arguments):
            return search(*arguments, part=LoopPart(block, state))

        first.__name__, first_from_ids.__name__, later.__name__ = (
            f"{name}_first_part", f"{name}_first_part_from_ids", f"{name}_later_part"
        )
        first_part = _traced_once(self._on_weights(first, "decoder"), jit_compile)
        first_part_from_ids = _traced_once(first_from_ids, jit_compile)  # (the functions it calls read the weights)
        later_part = _traced_once(self._on_weights(later, "decoder"), jit_compile)
        blocks = len(cache_block_sizes(self.max_output_length))

        def rest(part, arguments):
            if blocks == 1:
                return part.outputs

            def body(block, state, outputs, running):
                part = later_part(block, state, *arguments)
                return block + 1, part.state, part.outputs, part.running

            loop = (tf.constant(1), part.state, part.outputs, part.running)
            relaxed = lambda tensor: tf.TensorShape([None] * tensor.shape.rank)
            _, _, outputs, _ = tf.while_loop(
                lambda block, state, outputs, running: running & (block < blocks), body, loop,
                shape_invariants=tf.nest.map_structure(relaxed, loop),
            )
            return outputs

        return _PartedSearch(first_part_from_ids, first_part, rest)

    def _greedy(self, source_ids, key_values, source_mask, part=None):
        return greedy_decode(
            self._step, source_ids, self.max_output_length, self.suppress_end, static_shapes=True,
            encoded=Encoded(key_values, source_mask), part=part,
        )

    def _beam(self, source_ids, key_values, source_mask, part=None):
        return beam_search(
            self._step, source_ids, self.beam_size, self.length_penalty, self.max_output_length,
            suppress_end=self.suppress_end, static_shapes=True, encoded=Encoded(key_values, source_mask), part=part,
        )

    def _sample(self, source_ids, key_values, source_mask, temperature, top_k, top_p, seed, part=None):
        return sample_decode(
            self._step, source_ids, temperature, top_k, top_p, seed, self.max_output_length,
            static_shapes=True, encoded=Encoded(key_values, source_mask), part=part,
        )

    def source_ids(self, text):
        """Token ids [batch, length >= 1] of (sanitized) strings, truncated to `max_length`."""
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        ragged = self.source_tokenizer(text)
        if isinstance(ragged, list):  # keras-hub run eagerly: a list of rows
            ragged = tf.ragged.constant(ragged, tf.int32, ragged_rank=1, inner_shape=())
        ids = tf.cast(ragged, tf.int32)
        if isinstance(ids, tf.RaggedTensor):  # (eagerly, rows of one length come dense)
            ids = ids.to_tensor(default_value=PAD_ID)
        ids = ids[:, : self.model.config.max_length]
        # An all-empty batch still gets one (padding) column, so attention has a key.
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def detokenize(self, token_ids):
        text = tf.convert_to_tensor(self.target_tokenizer.detokenize(token_ids), tf.string)
        return tf.strings.strip(text)

    def _run(self, search, text, *args):
        """The real rows' outputs, in input order, of a `_PartedSearch` on the bucketed ids of `text`.

        Up to `ONE_CALL_ROWS` rows: the encoder and the search's first part in one call. More:
        the encoder (on the real tokens only, with XLA: `encode_tokens_for_decoding`; a program of
        its own, compiled per token count), then the first part. Then the later parts.
        """
        source_ids = self.source_ids(text)
        bucketed = _bucketed_batch(source_ids)

        def from_tokens():
            key_values = self._encode_tokens(bucketed, token_positions(bucketed, bucketed=True))
            source_mask = tf.not_equal(bucketed, PAD_ID)
            return search.first(bucketed, key_values, source_mask, *args), key_values, source_mask

        first, key_values, source_mask = tf.cond(
            tf.shape(bucketed)[0] <= ONE_CALL_ROWS, lambda: search.first_from_ids(bucketed, *args), from_tokens
        )
        outputs = search.rest(first, (bucketed, key_values, source_mask, *args))
        # A source with no token (empty or blank once normalised) translates to nothing, with score 0.
        empty = tf.reduce_all(tf.equal(source_ids, PAD_ID), axis=1)
        return [_where_rows(empty, tf.zeros_like, output[: tf.shape(source_ids)[0]]) for output in outputs]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate(self, text):
        """`{"translation": string [batch], "score": float32 [batch]}`, greedy."""
        token_ids, scores = self._run(self._greedy_search, text)
        return {"translation": self.detokenize(token_ids), "score": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate_beam(self, text):
        """Beam search: the best `translation` [batch], and every beam as `n_best`
        [batch, beam_size] with length-normalised `scores`, best first."""
        token_ids, scores = self._run(self._beam_search, text)
        shape = tf.shape(token_ids)
        flat = self.detokenize(tf.reshape(token_ids, [-1, shape[2]]))
        n_best = tf.reshape(flat, shape[:2])
        return {"translation": n_best[:, 0], "n_best": n_best, "scores": scores}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float32, name="top_p"),
            tf.TensorSpec([], tf.int32, name="seed"),
        ]
    )
    def translate_sample(self, text, temperature, top_k, top_p, seed):
        """Sampled translations (temperature, top-k, nucleus top-p; the same seed gives the same output)."""
        token_ids, scores = self._run(self._sample_search, text, temperature, top_k, top_p, seed)
        return {"translation": self.detokenize(token_ids), "score": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tokenize_source(self, text):
        """The source token ids the model sees (for debugging a translation)."""
        return {"token_ids": self.source_ids(text)}
