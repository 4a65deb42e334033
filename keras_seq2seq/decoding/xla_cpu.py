"""Decoding faster under XLA on CPU: weight copies laid out for one-position steps, and a packed encoder.

Everything here is specific to TensorFlow compiling with XLA for a CPU, and is used by
the serving path only (the `Translator`, with `jit_compile=True`); the model's layers
know nothing of it. What it buys, measured on the `small` model on 2 CPU cores (the
in-process A/Bs and the benchmark tables are in `benchmarks/README.md`):

- `StepWeights`: copies of the decoder's matrices made once from the weights. The
  tied output projection transposed ([d_model, vocab]) and the narrowing
  feed-forward output layers transposed are read by steps of one row (one sentence,
  greedy): 12% and 18% less time per step. Every matrix of a step is also cut into two
  column blocks for steps of 2 to 64 rows: the two products are independent, so XLA's
  runtime puts them on both cores, where one small product runs on one; beam search
  on one sentence 10-25% faster, greedy decoding of 4 to 64 sentences 9-33%.
- `barrier` before each bias addition of a one-position step: XLA's CPU compiler
  fuses a vector-matrix product with the addition after it into a kernel about half as
  fast as the product alone.
- `encode_tokens_for_decoding`: the encoder on the real tokens of a batch only (every
  layer but attention works position by position); a batch of short sentences padded
  to a common length is often half padding.

`XlaCpuStep` is the decoding step computed with these; it equals `DecodingStep` (the
model's own layers) up to float rounding, which the tests check.
"""

import contextlib

import tensorflow as tf
from keras import ops
from tensorflow.compiler.tf2xla.python import xla
from tensorflow.python.ops import control_flow_util

from keras_seq2seq.data.tokenizers import PAD_ID
from keras_seq2seq.decoding.step import DecodingStep, Encoded

# Steps with this many rows (inclusive bounds) multiply by column blocks.
BLOCKED_STEP_ROWS = (2, 64)


def compiling_with_xla():
    """Whether the ops being built are compiled by XLA (a `jit_compile` function, or inside one)."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def barrier(tensor):
    """`tensor`; under XLA, kept as computed (no fusion or rewrite crosses it). Identity gradient."""
    return _barrier(tensor) if compiling_with_xla() else tensor


@tf.custom_gradient
def _barrier(tensor):
    return xla.optimization_barrier(tensor)[0], lambda upstream: upstream


def add_bias(product, bias):
    """`product + bias` for a step's [rows, 1, units] product, with a `barrier` between them."""
    return ops.add(barrier(product), ops.cast(bias, product.dtype))


def column_blocks(kernel, count=2):
    """`kernel` [inputs, units] cut into `count` column blocks of (nearly) equal width."""
    units = kernel.shape[-1]
    bounds = [units * i // count for i in range(count + 1)]
    return [kernel[:, start:stop] for start, stop in zip(bounds, bounds[1:])]


def step_dense_layers(block):
    """The position-wise Dense layers a `DecoderBlock` runs in a cached step, in call order."""
    return [
        block.self_attention._query_key_value_dense,
        block.self_attention._output_dense,
        block.cross_attention._query_dense,
        block.cross_attention._output_dense,
        block.feed_forward._hidden_dense,
        block.feed_forward._output_dense,
    ]


class StepWeights(tf.Module):
    """Copies of a decoder's matrices in the layouts XLA on CPU multiplies fastest at one position.

    A snapshot: built from the weights by `from_model` and kept as (non-trainable)
    variables, so a SavedModel stores them. After the model's weights change, build new
    ones (the `Translator` builds them when it is constructed).

    Attributes:
        output_kernel: with tied embeddings, the embedding matrix transposed,
            [d_model, vocab]; None otherwise (the output layer has that layout already).
        transposed: per decoder block, per `step_dense_layers` entry, the kernel
            transposed [units, inputs] when the layer narrows (inputs > units), else None.
        blocks: per decoder block, per `step_dense_layers` entry, the kernel's two
            column blocks.
    """

    def __init__(self, output_kernel, transposed, blocks, name="step_weights"):
        super().__init__(name=name)
        self.output_kernel = output_kernel
        self.transposed = transposed
        self.blocks = blocks

    @classmethod
    def from_model(cls, model, as_variables=True):
        """The copies of `model`'s current weights; `as_variables=False`: tensors computed in the
        current graph (from weights that change between calls, such as dequantized ones)."""
        decoder = model.decoder
        if as_variables:
            variable = lambda value, name: tf.Variable(value, trainable=False, name=name)
        else:
            variable = lambda value, name: tf.convert_to_tensor(value)
        output_kernel = None
        if decoder.config.tie_embeddings:
            embeddings = ops.cast(decoder.embedding.embeddings, decoder.compute_dtype)
            output_kernel = variable(ops.transpose(embeddings), "output_kernel")
        transposed, blocks = [], []
        for index, block in enumerate(decoder.blocks):
            layers = step_dense_layers(block)
            transposed.append([
                variable(tf.transpose(layer.kernel), f"transposed_{index}_{i}")
                if layer.kernel.shape[0] > layer.kernel.shape[1] else None
                for i, layer in enumerate(layers)
            ])
            blocks.append([
                [variable(part, f"block_{index}_{i}_{j}") for j, part in enumerate(column_blocks(layer.kernel))]
                for i, layer in enumerate(layers)
            ])
        return cls(output_kernel, transposed, blocks)

    def structure(self):
        """`(output_kernel, transposed, blocks)`: the copies as a nest (`tf.nest`), None where there is none."""
        return (self.output_kernel, self.transposed, self.blocks)

    @classmethod
    def from_structure(cls, structure):
        """The `StepWeights` of a `structure()` (of tensors read elsewhere, for instance)."""
        output_kernel, transposed, blocks = structure
        return cls(output_kernel, transposed, blocks)


def step_product(rows, kernel, transposed=None, blocks=()):
    """`rows @ kernel` for [rows, inputs], from the copy that suits the row count.

    One row reads `transposed` (when given), `BLOCKED_STEP_ROWS` rows read the column
    `blocks` (when given), any other count the kernel itself.
    """
    cast = lambda matrix: ops.cast(matrix, rows.dtype)
    plain = lambda: tf.linalg.matmul(rows, cast(kernel))
    products = {}
    if transposed is not None:
        products["one"] = lambda: tf.linalg.matmul(rows, cast(transposed), transpose_b=True)
    if blocks:
        products["few"] = lambda: ops.concatenate([tf.linalg.matmul(rows, cast(block)) for block in blocks], -1)
    if not products:
        return plain()
    low, high = BLOCKED_STEP_ROWS

    def choose(count):
        kind = "one" if count == 1 else "few" if low <= count <= high else None
        return products.get(kind, plain)

    count = rows.shape[0]
    if count is not None:
        return choose(count)()
    count = tf.shape(rows)[0]
    one, few = count == 1, (count >= low) & (count <= high)
    if compiling_with_xla():
        # The row count is a compile-time constant: XLA keeps the chosen product and
        # drops the others (a switch_case would too, but kept more memory resident).
        product = plain()
        for chosen, product_for in ((few, choose(low)), (one, choose(1))):
            if product_for is not plain:
                product = tf.where(chosen, product_for(), product)
        return product
    return tf.switch_case(tf.where(one, 0, tf.where(few, 1, 2)), [choose(1), choose(low), plain])


def step_dense(layer, inputs, transposed=None, blocks=()):
    """`layer(inputs)` for a step's [rows, 1, inputs], through `step_product` and `add_bias`."""
    if layer.bias is None or layer.lora_enabled or layer.quantization_mode is not None:
        return layer(inputs)
    outputs = ops.expand_dims(step_product(inputs[:, 0], layer.kernel, transposed, blocks), 1)
    return layer.activation(add_bias(outputs, layer.bias))


class XlaCpuStep(DecodingStep):
    """`DecodingStep` whose decoder step reads `StepWeights` (see the module docstring).

    The same computation as `Decoder.decode_step`, block by block, with each matrix
    product taken from the copy that suits the step's row count. Meant for functions
    compiled with XLA for a CPU; elsewhere it computes the same, without the gain.

    Args:
        model: a `Seq2SeqTransformer`.
        weights: `StepWeights.from_model(model)`, kept by the caller.
    """

    def __init__(self, model, weights):
        super().__init__(model)
        self.weights = weights

    @contextlib.contextmanager
    def using(self, weights):
        """Within: the step reads `weights` (a `StepWeights`) instead of its own."""
        own, self.weights = self.weights, weights
        try:
            yield
        finally:
            self.weights = own

    def __call__(self, token_ids, step, cache, encoded, cache_slots=None):
        decoder = self.model.decoder
        stream = decoder.embedding(token_ids[:, None], start_index=step)
        new_cache = []
        for index, block in enumerate(decoder.blocks):
            dense = step_dense_layers(block)
            copies = list(zip(self.weights.transposed[index], self.weights.blocks[index]))

            def project(i, inputs, dense=dense, copies=copies):
                return step_dense(dense[i], inputs, *copies[i])

            self_attention = block.self_attention
            query, key, value = self_attention.split_query_key_value(project(0, block._sublayer_input(0, stream)))
            context, block_cache, _ = self_attention.cached_context(
                query, key, value, cache[index], step, cache_slots
            )
            stream = block._add_residual(0, stream, project(1, context), False)

            cross_attention = block.cross_attention
            query = cross_attention.split_heads(project(2, block._sublayer_input(1, stream)))
            context, _ = cross_attention.key_value_context(
                query, encoded.cross_key_values[index], encoded.source_mask
            )
            stream = block._add_residual(1, stream, project(3, context), False)

            hidden = project(4, block._sublayer_input(2, stream))
            stream = block._add_residual(2, stream, project(5, hidden), False)
            new_cache.append(block_cache)
        return self._project(decoder._finish(stream))[:, 0], new_cache

    def _project(self, stream):
        """Float32 logits of the final [rows, 1, d_model] stream."""
        decoder = self.model.decoder
        if not decoder.config.tie_embeddings:
            return ops.cast(step_dense(decoder.output_projection, stream), "float32")
        logits = ops.matmul(stream, ops.cast(self.weights.output_kernel, stream.dtype))
        return ops.cast(add_bias(logits, decoder.output_bias), "float32")

    def encode_tokens(self, source_ids, positions):
        """`encode`, with the encoder run on the tokens at `positions` only: see `encode_tokens_for_decoding`."""
        return encode_tokens_for_decoding(self.model, source_ids, positions)


# The packed encoder: the encoder of large batches, run on their real tokens only.


def scatter_tokens(tokens, positions, shape):
    """`tokens` [count, units] placed at `positions` ([count, 2]: row, column) of zeros [*shape, units].

    A position given twice receives one of its tokens (the same values, when both
    come from the same input position).
    """
    full_shape = tf.concat([tf.cast(shape, tf.int32), tf.shape(tokens)[-1:]], axis=0)
    return tf.tensor_scatter_nd_update(tf.zeros(full_shape, tokens.dtype), tf.cast(positions, tf.int32), tokens)


def _self_attention_of_tokens(layer, tokens, positions, padding_mask):
    """A `SelfMHA` (inference) on a batch kept as its real tokens [count, d_model] at `positions`.

    The projections run on the tokens alone, the attention on the padded layout of
    `padding_mask`. Returns [count, d_model], row i the output at `positions[i]`.
    """
    shape = tf.shape(padding_mask)
    query = layer.split_heads(scatter_tokens(layer._query_dense(tokens), positions, shape))
    key, value = layer.split_key_value(scatter_tokens(layer._key_value_dense(tokens), positions, shape))
    mask = ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
    context, _ = layer.attention_context(query, key, value, mask)
    return layer._output_dense(tf.gather_nd(context, tf.cast(positions, tf.int32)))


def encode_tokens(encoder, source_ids, positions):
    """The encoder output (inference) at `positions` only, computed without the padding.

    Args:
        encoder: an `Encoder`.
        source_ids: int [batch, source_length], 0 for padding.
        positions: int [count, 2], the (row, column) of every real token
            (`tf.where(source_ids != 0)`: attention reads them all), in any order;
            repeats, and entries that point at padding, compute values that no
            other token reads.

    Returns:
        `(tokens, padding_mask)`: [count, d_model], row i the encoder output at
        `positions[i]` (as `encoder(source_ids)` gives it, up to rounding), and the
        boolean [batch, source_length] mask of real tokens.
    """
    padding_mask = ops.not_equal(source_ids, 0)
    stream = tf.gather_nd(encoder._embed(source_ids, training=False), tf.cast(positions, tf.int32))
    for block in encoder.blocks:
        attended = _self_attention_of_tokens(block.self_attention, block._sublayer_input(0, stream), positions,
                                             padding_mask)
        stream = block._add_residual(0, stream, attended, False)
        transformed = block.feed_forward(block._sublayer_input(1, stream), training=False)
        stream = block._add_residual(1, stream, transformed, False)
    return encoder._finish(stream), padding_mask


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
    """`DecodingStep.encode`, with the encoder run on the tokens at `positions` only (`encode_tokens`).

    `positions` come from `token_positions(source_ids)`, bucketed or not. Same
    result as `encode` up to rounding, in less time when the batch holds much padding.
    """
    batch = tf.shape(source_ids)[0]
    source_ids = tf.pad(source_ids, [[0, 1], [0, 0]])  # row `batch`: the spare row of bucketed positions
    tokens, source_mask = encode_tokens(model.encoder, source_ids, positions)
    shape = tf.shape(source_ids)
    key_values = []
    for block in model.decoder.blocks:
        attention = block.cross_attention
        keys, values = attention.split_key_value(scatter_tokens(attention._key_value_dense(tokens), positions, shape))
        key_values.append((keys[:batch], values[:batch]))
    return Encoded(key_values, source_mask[:batch])
