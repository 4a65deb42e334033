"""`serving.graph_pass`: a SavedModel's functions in fewer nodes, computing what they computed."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_seq2seq.serving.graph_pass import simplify_functions, simplify_saved_model

pytestmark = pytest.mark.tensorflow_only
ROOT = Path(__file__).resolve().parent.parent


class _Module(tf.Module):
    def __init__(self):
        super().__init__()
        self.counter = tf.Variable(0.0)
        self.table = tf.Variable(tf.reshape(tf.range(12.0), [3, 4]))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def repeated(self, x):
        """The same values computed several times over, as a trace leaves them."""
        rows, columns = tf.shape(x)[0], tf.shape(x)[1]
        flat = tf.reshape(x, [tf.shape(x)[0] * tf.shape(x)[1]])
        again = tf.reshape(tf.identity(x), [rows * columns])
        scaled = tf.identity(tf.identity(flat)) * 2.0 + again * 2.0
        first_row = self.table.read_value()[0] + self.table.read_value()[0]
        return {"scaled": scaled, "same": tf.identity(scaled), "first_row": first_row, "input": x}

    @tf.function(input_signature=[])
    def stateful(self):
        """Equal nodes of stateful ops each run: two draws, two increments, a read after a write."""
        draws = tf.stack([tf.random.uniform([]), tf.random.uniform([])])
        self.counter.assign_add(1.0)
        self.counter.assign_add(1.0)
        with tf.control_dependencies([self.counter.assign_add(1.0)]):
            after = tf.identity(self.counter.read_value())
        return {"draws": draws, "after": after}


def _library(path):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return saved_model.meta_graphs[0].graph_def.library


def _nodes(path, name):
    (function,) = [f for f in _library(path).function if f.signature.name.startswith(f"__inference_{name}_")]
    return function.node_def


@pytest.fixture
def saved(tmp_path):
    module = _Module()
    plain, simplified = tmp_path / "plain", tmp_path / "simplified"
    tf.saved_model.save(module, str(plain))
    shutil.copytree(plain, simplified)
    return plain, simplified, simplify_saved_model(simplified)


def test_the_simplified_functions_compute_what_the_plain_ones_compute_in_fewer_nodes(saved):
    plain, simplified, (before, after) = saved
    x = tf.constant(np.arange(6.0).reshape(2, 3), tf.float32)
    loaded = [tf.saved_model.load(str(path)) for path in (plain, simplified)]
    expected, got = (model.repeated(x) for model in loaded)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())
    np.testing.assert_array_equal(got["scaled"].numpy(), 4.0 * np.arange(6.0))
    plain_nodes, simplified_nodes = _nodes(plain, "repeated"), _nodes(simplified, "repeated")
    count = lambda nodes, op: sum(node.op == op for node in nodes)
    assert count(simplified_nodes, "Shape") == 1 < count(plain_nodes, "Shape")
    assert count(simplified_nodes, "Reshape") == 1 < count(plain_nodes, "Reshape")
    # Both reads of the variable stay (a read is stateful); the equal slices of them do not merge.
    assert count(simplified_nodes, "ReadVariableOp") == count(plain_nodes, "ReadVariableOp") == 2
    assert len(simplified_nodes) < len(plain_nodes) and after < before


def test_equal_stateful_nodes_each_run_and_control_dependencies_hold(saved):
    plain, simplified, _ = saved
    nodes = _nodes(simplified, "stateful")
    assert sum(node.op == "RandomUniform" for node in nodes) == 2
    assert sum(node.op == "AssignAddVariableOp" for node in nodes) == 3
    loaded = tf.saved_model.load(str(simplified))
    outputs = loaded.stateful()
    draws = outputs["draws"].numpy()
    assert draws[0] != draws[1]
    assert outputs["after"].numpy() == 3.0 and loaded.counter.numpy() == 3.0
    assert loaded.stateful()["after"].numpy() == 6.0


def test_simplifying_twice_removes_nothing_more_and_the_fingerprint_follows_the_graph(saved):
    plain, simplified, (_, after) = saved
    library = _library(simplified)
    assert simplify_functions(library) == (after, after)
    # (A fingerprint left as saved would name the graph before the pass.)
    fingerprint = lambda path: tf.saved_model.experimental.read_fingerprint(str(path))
    assert fingerprint(simplified).saved_model_checksum != fingerprint(plain).saved_model_checksum


def test_a_function_with_tensorflow_1_loops_is_left_as_traced():
    """Its graph has frames and cycles (`Merge` <- `NextIteration`), which the pass does not follow."""
    from tensorflow.core.framework import function_pb2

    library = function_pb2.FunctionDefLibrary()
    function = library.function.add()
    function.signature.name = "v1_loop"
    for name in ("one", "same_one"):
        node = function.node_def.add(name=name, op="Const")
        node.attr["dtype"].type = tf.int32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(1))
    function.node_def.add(name="merge", op="Merge", input=["one:output:0", "next:output:0"])
    function.node_def.add(name="next", op="NextIteration", input=["merge:output:0"])
    assert simplify_functions(library) == (4, 4)


@pytest.mark.parametrize("name", ["fr-en-small", "fr-en-small-int8"])
def test_the_shipped_exports_are_simplified(name):
    """A shipped export written without the pass would load 0.05-0.09 GiB heavier (benchmarks/README.md)."""
    library = _library(ROOT / "saved_models" / name)
    before, after = simplify_functions(library)
    assert before == after
    assert before < {"fr-en-small": 6_500, "fr-en-small-int8": 8_000}[name]
