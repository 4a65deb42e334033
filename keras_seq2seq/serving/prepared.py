"""Weights that serving derives from a model's, computed once per process and stored empty.

A `Translator` reads some weights in another form than the model keeps them: the
`StepWeights` copies (layouts XLA on CPU multiplies fastest at one position) and, for an
int8 model, the float value of each int8 matrix. Stored in a SavedModel they would double its
size (the copies were 22 of the shipped model's 67 MB); computed in every call they would
cost each call a pass over every weight (int8 serving was up to 1.9x slower than float so).

`PreparedWeights` keeps them in variables of unknown shape: `compute` runs when the
Translator is built, an export `release`s them (each becomes a vector of one element, which
is what the SavedModel stores) and `fill`s them again after saving. A loaded SavedModel fills
them while it loads, after its checkpoint is restored: `PreparedWeights` holds a resource
whose initializer is the fill (`_FilledAtLoad`), which `tf.saved_model.load` runs, and
which TensorFlow Serving and `tf.compat.v1` loaders run as the SavedModel's init op. The
functions that read the values capture those variables only, not the weights they are
computed from: every call of a loaded function passes each captured variable, a few
microseconds apiece (an int8 signature, which also captured the int8 weights for a fill in
its first call, took 0.7 ms longer per call than the float one).
"""

import functools

import tensorflow as tf

# The shared name of the (unused) variable handle `_FilledAtLoad` creates: not a weight.
LOAD_MARKER = "prepared_weights_filled_at_load"


class PreparedWeights(tf.Module):
    """The tensors `compute()` returns, kept in variables a SavedModel stores empty and fills at load.

    Args:
        compute: a function of no argument returning a nest (lists, tuples, dicts) of tensors
            and `None`s; it runs now, eagerly, and again in `fill` (and when a SavedModel
            holding this object loads).
    """

    def __init__(self, compute, name="prepared_weights"):
        super().__init__(name=name)
        self._compute = compute
        structure = compute()
        leaves = [None if leaf is None else tf.convert_to_tensor(leaf) for leaf in tf.nest.flatten(structure)]
        self._specs = [None if leaf is None else tf.TensorSpec.from_tensor(leaf) for leaf in leaves]
        self._structure = tf.nest.pack_sequence_as(structure, self._specs)  # specs only: no tensor kept here
        self.values = [
            tf.Variable(leaf, shape=tf.TensorShape(None), trainable=False, name=f"value_{i}")
            for i, leaf in enumerate(leaves)
            if leaf is not None
        ]
        self.ready = tf.Variable(True, trainable=False, name="ready")
        # Behind a `partial`: a tf.function attribute would also be saved as this object's own
        # function, traced a second time.
        self._fill = functools.partial(tf.function(self._fill_values, input_signature=[]))
        self.filled_at_load = _FilledAtLoad(self._fill)

    def _fill_values(self):
        computed = [leaf for leaf in tf.nest.flatten(self._compute()) if leaf is not None]
        assigned = [variable.assign(value) for variable, value in zip(self.values, computed, strict=True)]
        with tf.control_dependencies(assigned):
            return tf.identity(self.ready.assign(True))

    def fill(self):
        """Computes the values from the weights of this moment and keeps them (eagerly)."""
        self._fill()

    def read(self, keys=None):
        """The values, in `compute`'s structure, with their shapes.

        `keys`: only these entries of a dict structure are read (the others are None). Each value
        read is a node of the reading function's graph (the read; its shape is static only), which
        a loaded SavedModel holds in memory once per function that calls it: a function reads what
        it uses.
        """
        if keys is not None and not isinstance(self._structure, dict):
            raise ValueError(f"read(keys={keys!r}) needs a dict structure, not a {type(self._structure).__name__}")
        if tf.executing_eagerly() and not self.ready.numpy():
            raise ValueError("the prepared values were released (an export's placeholders): fill() them first")
        wanted = [True] * len(self._specs)
        if keys is not None:  # (tf.nest orders a dict's entries by key)
            wanted = [key in keys for key in sorted(self._structure) for _ in tf.nest.flatten(self._structure[key])]
        variables = iter(self.values)
        leaves = []
        for spec, read in zip(self._specs, wanted, strict=True):
            variable = None if spec is None else next(variables)
            leaves.append(_read(variable, spec.shape) if read and variable is not None else None)
        return tf.nest.pack_sequence_as(self._structure, leaves)

    def release(self):
        """Replaces every value by a placeholder of one element (what an export stores of it), until
        the next `fill` (or a load of the SavedModel)."""
        self.ready.assign(False)
        for variable, spec in zip(self.values, [spec for spec in self._specs if spec is not None]):
            # One element, not none: the sharded checkpoint writer skips empty tensors.
            variable.assign(tf.zeros([1], spec.dtype))


def _read(variable, shape):
    """The variable's value with its static `shape`: in a graph, a shape the trace knows (no
    `tf.ensure_shape` node: filled, the value has it); eagerly, checked."""
    value = variable.read_value()
    value.set_shape(shape)
    return value


class _FilledAtLoad(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer is `fill`: the SavedModel's loaders run it once its variables are
    restored (`tf.saved_model.load` calls every resource's `_initialize`; the TensorFlow 1 and
    Serving loaders run the init op, which calls them). The resource itself is a scalar variable
    handle named `LOAD_MARKER`, never read: a `TrackableResource` must create one."""

    def __init__(self, fill):
        self._fill_function = fill  # (a plain attribute: not tracked, no cycle in the object graph)
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.bool, shape=[], shared_name=LOAD_MARKER)

    def _initialize(self):
        return self._fill_function()
