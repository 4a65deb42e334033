"""Weights that serving derives from a model's, computed once per process and stored empty.

A `Translator` reads some weights in another form than the model keeps them: the
`StepWeights` copies (layouts XLA on CPU multiplies fastest at one position) and, for an
int8 model, the float value of each int8 matrix. Stored in a SavedModel they would double its
size (the copies were 22 of the shipped model's 67 MB); computed in every call they would
cost each call a pass over every weight (int8 serving was up to 1.9x slower than float so).

`PreparedWeights` keeps them in variables of unknown shape: `compute` runs when the
Translator is built, an export `release`s them (each becomes a vector of one element, which
is what the SavedModel stores) and every signature `prepare`s them before it reads them: the first
call of a loaded model computes them, later calls find them there. Several threads calling at
once may each compute them: the same values, written whole.
"""

import functools

import tensorflow as tf


class PreparedWeights(tf.Module):
    """The tensors `compute()` returns, kept in variables a SavedModel stores empty.

    Args:
        compute: a function of no argument returning a nest (lists, tuples, dicts) of tensors
            and `None`s; it runs now, eagerly, and again in `prepare` after a `release`.
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
        # One function for every caller: each signature of an export calls it (its first call does),
        # and the SavedModel stores its graph once rather than once a signature. Behind a
        # `partial`: a tf.function attribute would also be saved as this object's own function,
        # traced again for it.
        self._fill = functools.partial(tf.function(self._fill_values, input_signature=[]))

    def prepare(self):
        """Computes and keeps the values if they were released; does nothing when they are there.

        Returns the `ready` flag (True), for a control dependency of what reads them.
        """

        return tf.cond(self.ready, lambda: tf.identity(self.ready), self._fill)

    def _fill_values(self):
        computed = [leaf for leaf in tf.nest.flatten(self._compute()) if leaf is not None]
        assigned = [variable.assign(value) for variable, value in zip(self.values, computed, strict=True)]
        with tf.control_dependencies(assigned):
            return tf.identity(self.ready.assign(True))

    def read(self, keys=None):
        """The values, in `compute`'s structure, with their shapes (after `prepare`).

        `keys`: only these entries of a dict structure are read (the others are None). Each value
        read is three nodes of the reading function's graph, which a loaded SavedModel holds in
        memory once per function that calls it: a function reads what it uses.
        """
        if keys is not None and not isinstance(self._structure, dict):
            raise ValueError(f"read(keys={keys!r}) needs a dict structure, not a {type(self._structure).__name__}")
        wanted = [True] * len(self._specs)
        if keys is not None:  # (tf.nest orders a dict's entries by key)
            wanted = [key in keys for key in sorted(self._structure) for _ in tf.nest.flatten(self._structure[key])]
        variables = iter(self.values)
        leaves = []
        for spec, read in zip(self._specs, wanted, strict=True):
            variable = None if spec is None else next(variables)
            leaves.append(tf.ensure_shape(variable.read_value(), spec.shape) if read and variable is not None else None)
        return tf.nest.pack_sequence_as(self._structure, leaves)

    def release(self):
        """Replaces every value by a placeholder of one element (what an export stores of it); the next
        `prepare` computes them again."""
        self.ready.assign(False)
        for variable, spec in zip(self.values, [spec for spec in self._specs if spec is not None]):
            # One element, not none: the sharded checkpoint writer skips empty tensors.
            variable.assign(tf.zeros([1], spec.dtype))
