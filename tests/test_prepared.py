"""`PreparedWeights`: values derived from weights, computed once, stored as placeholders, computed
again by `fill` after a release, and by a SavedModel's loaders when it loads."""

import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq.serving.prepared import PreparedWeights


class Holder(tf.Module):
    """A weight, and its transpose and double kept as prepared values (with a None in the nest)."""

    def __init__(self):
        super().__init__()
        self.weight = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
        self.computed = 0
        self.prepared = PreparedWeights(self._compute)

    def _compute(self):
        self.computed += 1  # counts eager computations (and traces)
        return {"copies": (tf.transpose(self.weight), None), "double": [self.weight * 2]}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def apply(self, rows):
        values = self.prepared.read()
        (transposed, nothing), (double,) = values["copies"], values["double"]
        assert nothing is None and transposed.shape == (3, 2) and double.shape == (2, 3)  # static shapes
        return tf.matmul(rows, transposed) + tf.reduce_sum(double)


def _expected(holder, rows):
    weight = holder.weight.numpy()
    return rows @ weight.T + 2 * weight.sum()


def test_values_are_computed_once_when_built_and_read_in_their_structure():
    holder = Holder()
    assert holder.computed == 1
    values = holder.prepared.read()
    np.testing.assert_array_equal(values["copies"][0].numpy(), holder.weight.numpy().T)
    assert values["copies"][1] is None
    np.testing.assert_array_equal(values["double"][0].numpy(), holder.weight.numpy() * 2)
    assert [v.shape.rank for v in holder.prepared.values] == [None, None]  # stored shapeless
    rows = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(holder.apply(rows).numpy(), _expected(holder, rows))
    assert holder.computed == 1  # a call reads them: nothing computed again


def test_a_release_leaves_placeholders_until_fill_computes_the_values_again():
    holder = Holder()
    rows = np.ones((4, 3), np.float32)
    before = holder.apply(rows).numpy()
    holder.prepared.release()
    assert not holder.prepared.ready.numpy()
    assert [v.numpy().shape for v in holder.prepared.values] == [(1,), (1,)]
    with pytest.raises(ValueError, match="released"):
        holder.prepared.read()
    holder.prepared.fill()
    assert holder.prepared.ready.numpy()
    np.testing.assert_array_equal(holder.apply(rows).numpy(), before)
    np.testing.assert_array_equal(holder.prepared.read()["copies"][0].numpy(), holder.weight.numpy().T)


def test_fill_takes_the_weights_of_that_moment():
    holder = Holder()
    holder.weight.assign(holder.weight * 10)
    stale = holder.prepared.read()["double"][0].numpy()
    np.testing.assert_array_equal(stale, holder.weight.numpy() / 10 * 2)  # a snapshot
    holder.prepared.fill()
    np.testing.assert_array_equal(holder.prepared.read()["double"][0].numpy(), holder.weight.numpy() * 2)


@pytest.fixture()
def saved(tmp_path):
    holder = Holder()
    rows = np.array([[1, 0, 0], [0, 1, 2]], np.float32)
    expected = holder.apply(rows).numpy()
    np.testing.assert_allclose(expected, _expected(holder, rows))
    holder.prepared.release()
    tf.saved_model.save(holder, str(tmp_path), signatures={"apply": holder.apply})
    return tmp_path, rows, expected


def test_a_saved_model_stores_placeholders_and_computes_the_values_when_it_loads(saved):
    path, rows, expected = saved
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_shape_map()
    prepared = {name: shape for name, shape in stored.items() if name.startswith("prepared/values/")}
    assert sorted(prepared.values()) == [[1], [1]]

    loaded = tf.saved_model.load(str(path))
    # Filled by the load, before any call.
    assert loaded.prepared.ready.numpy()
    assert sorted(v.numpy().shape for v in loaded.prepared.values) == [(2, 3), (3, 2)]
    apply = loaded.signatures["apply"]
    np.testing.assert_array_equal(apply(rows=tf.constant(rows))["output_0"].numpy(), expected)
    # A call passes the values it reads, not the weight they come from (nor the flag).
    captured = {id(handle) for handle in apply.captured_inputs}
    assert captured == {id(value.handle) for value in loaded.prepared.values}
    assert id(loaded.weight.handle) not in captured


def test_a_saved_model_loaded_as_tensorflow_serving_loads_it_computes_the_values_in_its_init_op(saved):
    path, rows, expected = saved
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:  # restore by the saver, then the init op
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["apply"]
        output = session.run(signature.outputs["output_0"].name, {signature.inputs["rows"].name: rows})
    np.testing.assert_array_equal(output, expected)


def test_read_with_keys_reads_those_entries_only():
    holder = Holder()

    @tf.function
    def copies_only():
        values = holder.prepared.read(["copies"])
        assert values["double"] == [None] and values["copies"][1] is None
        return values["copies"][0]

    np.testing.assert_array_equal(copies_only().numpy(), holder.weight.numpy().T)
    graph = copies_only.get_concrete_function().graph
    assert sum(op.type == "ReadVariableOp" for op in graph.get_operations()) == 1
    np.testing.assert_array_equal(holder.prepared.read(["double"])["double"][0].numpy(), holder.weight.numpy() * 2)
    with pytest.raises(ValueError, match="dict structure"):
        PreparedWeights(lambda: [holder.weight]).read(["copies"])
