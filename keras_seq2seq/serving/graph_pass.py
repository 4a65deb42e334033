"""Fewer nodes in a SavedModel's functions, each computing what it computed before.

`tf.saved_model.load` rebuilds every function of a SavedModel as a graph of its own (with
shape inference for each node, in C++), and copies each function into the graph of every
function that calls it, directly or not: a loaded model's memory grows with the nodes of its
functions times their callers (the shipped int8 model: 0.27 GiB for 12,130 nodes). A trace
leaves many nodes that compute a value another node already computes: a constant for each
use (each slice's begin, end and strides, each reshape's target), `tf.shape` of one tensor
taken again at each use, an `Identity` after each variable read. TensorFlow merges them when
a function first runs (grappler's common subgraph elimination, XLA's own), after the loader
has rebuilt them all.

`simplify_functions` merges them in the stored library. In each function, in the order of
its graph (so that nodes whose inputs were merged merge in turn), a node whose op is
stateless and whose op, attributes (but the static shapes a trace noted), device and inputs
equal an earlier node's is replaced by that node, and an `Identity` that only passes a
tensor on (on the device it comes from) by its input. Stateful ops (variable reads and
writes, random ops, function calls, any op TensorFlow's registry calls stateful or does not
know) and nodes with control inputs are kept as they are, as are the nodes that give the
function's outputs; a function with TensorFlow 1 control flow (a loop's frames and cycles)
is left as traced. The shipped models (with `PreparedWeights.read`'s reads of one node):
float 9,900 -> 5,527 nodes, int8 12,130 -> 6,597, every translation and score the same
(benchmarks/README.md).
"""

from pathlib import Path

from tensorflow.python.framework import op_def_registry

# What a node may carry besides its computation: its static shapes, as a trace knew them.
_SHAPES = "_output_shapes"
_IDENTITY_ATTRIBUTES = {"T", _SHAPES}
# TensorFlow 1 control flow: frames, and cycles through NextIteration (tf.function traces none).
_FRAMES = {"Enter", "RefEnter", "Exit", "RefExit", "NextIteration", "RefNextIteration", "Merge", "RefMerge",
           "Switch", "RefSwitch", "LoopCond"}


def simplify_functions(library):
    """Simplifies every function of a `FunctionDefLibrary` proto in place; returns (nodes before, after)."""
    names = {function.signature.name for function in library.function}
    before = after = 0
    for function in library.function:
        before += len(function.node_def)
        _simplify(function, names)
        after += len(function.node_def)
    return before, after


def simplify_saved_model(path):
    """`simplify_functions` on the SavedModel at `path` (its `saved_model.pb` rewritten, and its
    `fingerprint.pb` made again from it); returns (nodes before, after)."""
    from tensorflow.core.protobuf import saved_model_pb2

    file = Path(path) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(file.read_bytes())
    counts = (0, 0)
    for meta_graph in saved_model.meta_graphs:
        before, after = simplify_functions(meta_graph.graph_def.library)
        counts = (counts[0] + before, counts[1] + after)
    file.write_bytes(saved_model.SerializeToString())
    _write_fingerprint(path)
    return counts


def _write_fingerprint(path):
    """The SavedModel's `fingerprint.pb` made again from its `saved_model.pb` (as `tf.saved_model.save`
    writes it): a fingerprint identifies the graph it was made from."""
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:  # (a TensorFlow without it: a stale fingerprint would mislead, so none)
        (Path(path) / "fingerprint.pb").unlink(missing_ok=True)
        return
    fingerprinting_utils.write_fingerprint(str(path))


def _split(reference):
    """`"^node"`, `"node:output:0"` or `"argument"` -> (is a control input, node or argument name)."""
    control = reference.startswith("^")
    return control, (reference[1:] if control else reference).split(":", 1)[0]


def _is_pure(node, function_names):
    """Whether `node` computes a value of its inputs and attributes only (two equal ones compute equal values)."""
    if node.op in function_names:
        return False
    op_def = op_def_registry.get(node.op)
    if op_def is None or op_def.is_stateful:
        return False
    return not any(value.HasField("func") or len(value.list.func) for value in node.attr.values())


def _topological_order(nodes):
    """The nodes of a function, each after the nodes its inputs come from."""
    by_name = {node.name: node for node in nodes}
    order, done, on_path = [], set(), set()
    for root in nodes:
        if root.name in done:
            continue
        stack = [(root.name, iter(root.input))]
        on_path.add(root.name)
        while stack:
            name, inputs = stack[-1]
            for reference in inputs:
                source = _split(reference)[1]
                if source in by_name and source not in done and source not in on_path:
                    on_path.add(source)
                    stack.append((source, iter(by_name[source].input)))
                    break
            else:
                stack.pop()
                on_path.discard(name)
                done.add(name)
                order.append(by_name[name])
    return order


def _simplify(function, function_names):
    nodes = list(function.node_def)
    if any(node.op in _FRAMES for node in nodes):
        return
    kept_names = set(function.control_ret.values()) | {_split(value)[1] for value in function.ret.values()}
    controlled = set()
    for node in nodes:
        for reference in node.input:
            control, source = _split(reference)
            if control:
                controlled.add(source)
        for value in node.attr["_class"].list.s if "_class" in node.attr else []:
            kept_names.add(value.decode().removeprefix("loc:@"))
    devices = {node.name: node.device for node in nodes}
    merged_into = {}  # node name -> the equal node kept in its place
    forwarded = {}  # an Identity's name -> its input (a reference)

    def rewrite(reference):
        source = _split(reference)[1]
        if source in forwarded:  # (an identity is forwarded only if no node waits for it)
            return forwarded[source]
        if source in merged_into:
            return reference.replace(source, merged_into[source], 1)
        return reference

    seen = {}
    for node in _topological_order(nodes):
        inputs = []
        for reference in map(rewrite, node.input):
            if reference not in inputs or not reference.startswith("^"):
                inputs.append(reference)
        del node.input[:]
        node.input.extend(inputs)
        if node.name in kept_names:
            continue
        if (
            node.op == "Identity"
            and len(node.input) == 1
            and not node.input[0].startswith("^")
            and node.device in ("", devices.get(_split(node.input[0])[1], ""))  # (not a copy to another device)
            and set(node.attr) <= _IDENTITY_ATTRIBUTES
            and node.name not in controlled
        ):
            forwarded[node.name] = node.input[0]
            continue
        if any(reference.startswith("^") for reference in node.input) or not _is_pure(node, function_names):
            continue
        attributes = sorted(
            (key, value.SerializeToString(deterministic=True)) for key, value in node.attr.items() if key != _SHAPES
        )
        key = (node.op, tuple(node.input), tuple(attributes), node.device)
        if key in seen:
            merged_into[node.name] = seen[key]
        else:
            seen[key] = node.name
    for key, value in list(function.ret.items()):
        function.ret[key] = rewrite(value)
    survivors = [node for node in nodes if node.name not in forwarded and node.name not in merged_into]
    del function.node_def[:]
    function.node_def.extend(survivors)
