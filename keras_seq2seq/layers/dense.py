"""A Dense layer applied at every position as one two-dimensional matmul."""

import collections
import contextlib
import contextvars

import keras
import tensorflow as tf
from keras import ops
from tensorflow.compiler.tf2xla.python import xla
from tensorflow.python.ops import control_flow_util


def add_bias(product, bias):
    """`product + bias`, written so XLA on CPU keeps a one-row matmul fast.

    XLA's CPU compiler fuses a vector-matrix product with the addition that follows
    it into one kernel, which runs about half as fast as the product alone (256 x 8000
    float32: 114 us against 60). A decoding step of one sentence is all such products:
    when `product` holds one position per sequence ([..., 1, units], the shape of a
    decoding step) and XLA compiles it, an optimization barrier (free at run time)
    keeps the two apart. Anywhere else it is the plain addition, which TensorFlow
    fuses into the matmul itself when not compiling with XLA.
    """
    if len(product.shape) >= 2 and product.shape[-2] == 1:
        product = barrier(product)
    return ops.add(product, ops.cast(bias, product.dtype))


def barrier(tensor):
    """`tensor`; under XLA, kept as computed (no fusion or rewrite crosses it). Identity gradient."""
    return _barrier(tensor) if compiling_with_xla() else tensor


def compiling_with_xla():
    """Whether the ops being built are compiled by XLA (a `jit_compile` function, or inside one)."""
    return keras.backend.backend() == "tensorflow" and control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )


@tf.custom_gradient
def _barrier(tensor):
    """`tensor`, with XLA's optimizations kept from crossing it (identity gradient)."""
    return xla.optimization_barrier(tensor)[0], lambda upstream: upstream


_STEP_KERNELS = contextvars.ContextVar("step_kernels", default=None)

# Decoding steps with this many rows (inclusive bounds) multiply by column blocks.
BLOCKED_STEP_ROWS = (2, 64)


class StepKernels(collections.namedtuple("StepKernels", ["transposed", "blocks"])):
    """Copies of one layer's kernel that decoding steps read instead of the kernel itself.

    transposed: the kernel transposed, [units, inputs], or None. XLA on CPU
        multiplies one row by a narrowing matrix (more inputs than units) faster in
        this layout: 46 us instead of 84 for 1024 x 256 read from memory. Used for
        steps of one row.
    blocks: the kernel cut into column blocks ([inputs, units_i], in order), or ().
        Steps of `BLOCKED_STEP_ROWS` rows multiply by each block separately and
        concatenate: the products are independent, so XLA's runtime runs them on
        different cores, where one product of a few rows runs on one (Eigen shares
        out only large products). On the `small` decoder (in-process A/Bs) beam
        search on one sentence took 10-25% less time, greedy decoding of 4 to 64
        sentences 9-33% less; at one row the split is slower (12%), and from a few
        hundred rows up the single product is faster again (5%).
    """


def narrowing_layers(layer):
    """The `PositionwiseDense` layers in `layer` with more inputs than outputs (a feed-forward's output),
    the ones that gain from a transposed copy (see `StepKernels`)."""
    return [
        sublayer
        for sublayer in layer._flatten_layers(include_self=True, recursive=True)
        if isinstance(sublayer, PositionwiseDense) and sublayer.kernel.shape[0] > sublayer.kernel.shape[1]
    ]


def column_blocks(kernel, count=2):
    """`kernel` [inputs, units] cut into `count` column blocks of (nearly) equal width."""
    units = kernel.shape[-1]
    bounds = [units * i // count for i in range(count + 1)]
    return [kernel[:, start:stop] for start, stop in zip(bounds, bounds[1:])]


@contextlib.contextmanager
def step_kernels(pairs):
    """Within this context, each `(layer, StepKernels)` of `pairs` computes decoding steps from those copies.

    The copies are kept by the caller (the Translator keeps them as variables and
    refreshes them with the weights). They apply to [batch, 1, d] inputs, while a
    function is traced; other calls are unchanged. Each step picks by its row
    count: one row reads `transposed`, `BLOCKED_STEP_ROWS` rows read `blocks`,
    other counts (or missing copies) the kernel itself.
    """
    token = _STEP_KERNELS.set({id(layer): kernels for layer, kernels in pairs})
    try:
        yield
    finally:
        _STEP_KERNELS.reset(token)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class PositionwiseDense(keras.layers.Dense):
    """`keras.layers.Dense` that folds all leading axes into one before the matmul.

    Same weights, same results; [batch, length, d] inputs become one [batch * length, d]
    matmul instead of a broadcast batched matmul. Under XLA on CPU the 2-D form runs
    1.3x to 2x faster, forward and backward (measured for the Transformer's shapes).
    A decoding step ([batch, 1, d]) gets its bias through `add_bias`.
    """

    def call(self, inputs, training=None):
        if self._decoding_step(inputs):
            kernels = (_STEP_KERNELS.get() or {}).get(id(self)) or StepKernels(None, ())
            outputs = ops.expand_dims(self._step_product(inputs[:, 0], kernels), 1)
            return self.activation(add_bias(outputs, self.bias))
        if len(inputs.shape) <= 2:
            return super().call(inputs, training=training)
        shape = ops.shape(inputs)
        flat = super().call(ops.reshape(inputs, (-1, shape[-1])), training=training)
        return ops.reshape(flat, (*shape[:-1], self.units))

    def _step_product(self, rows, kernels):
        """`rows @ kernel` for [rows, inputs], from the copies in `kernels` that suit the row count."""
        cast = lambda kernel: ops.cast(kernel, rows.dtype)
        plain = lambda: tf.linalg.matmul(rows, cast(self.kernel))
        products = {}
        if kernels.transposed is not None:
            products["one"] = lambda: tf.linalg.matmul(rows, cast(kernels.transposed), transpose_b=True)
        if kernels.blocks:
            products["few"] = lambda: ops.concatenate([tf.linalg.matmul(rows, cast(b)) for b in kernels.blocks], -1)
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
            # drops the others. (A switch_case would do the same, but XLA's compilation
            # of its branch functions kept about 0.35 GiB more resident in a served SavedModel.)
            product = plain()
            for chosen, product_for in ((few, choose(low)), (one, choose(1))):
                if product_for is not plain:
                    product = tf.where(chosen, product_for(), product)
            return product
        return tf.switch_case(tf.where(one, 0, tf.where(few, 1, 2)), [choose(1), choose(low), plain])

    def _decoding_step(self, inputs):
        """One position per sequence ([batch, 1, d]) through a plain float layer with a bias."""
        plain = self.bias is not None and not self.lora_enabled and self.quantization_mode is None
        return plain and len(inputs.shape) == 3 and inputs.shape[1] == 1
