"""The exported Translator, loaded in a fresh process that imports only tensorflow and registers
tensorflow-text's SentencePiece ops (as the README's serving example; `import tensorflow_text` in the
session loader's)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq import Translator, export_translator, load_run
from keras_seq2seq.serving.prepared import LOAD_MARKER

BAD_INPUTS = [
    "Je suis étudiant.",
    "",
    "   ",
    "Je suis étudiant. " * 600,  # about 10,000 characters
    "Salut 😀🎉 !",
    "你好，世界。Привет мир.",
    b"Mauvais \xff\xfe octets \xc3".decode("latin-1"),  # replaced by bytes below
]

LOADER = r"""
import json, sys

class Refuse:  # the package and keras-hub must not be needed: make them unimportable
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras_seq2seq", "keras_hub", "keras_nlp"):
            raise ImportError(f"{name} is blocked in this process")

sys.meta_path.insert(0, Refuse())
import importlib.util, os
import tensorflow as tf
text = importlib.util.find_spec("tensorflow_text").submodule_search_locations[0]
tf.load_op_library(os.path.join(text, "python", "ops", "_sentencepiece_tokenizer.so"))  # not `import tensorflow_text`
inputs = [bytes.fromhex(h) for h in json.loads(sys.argv[2])]
signatures = tf.saved_model.load(sys.argv[1]).signatures
outputs = signatures["serving_default"](text=tf.constant(inputs))
beams = signatures["beam_search"](text=tf.constant(inputs))
sampled = signatures["sample"](text=tf.constant(inputs), temperature=tf.constant(1.0), top_k=tf.constant(0),
                               top_p=tf.constant(1.0), seed=tf.constant(3))
print(json.dumps({"translation": [t.decode("utf-8") for t in outputs["translation"].numpy()],
                  "score": [float(s) for s in outputs["score"].numpy()],
                  "n_best": [[t.decode("utf-8") for t in row] for row in beams["n_best"].numpy()],
                  "beam_scores": beams["scores"].numpy().tolist(),
                  "sampled": [t.decode("utf-8") for t in sampled["translation"].numpy()],
                  "sampled_score": [float(s) for s in sampled["score"].numpy()],
                  "modules": sorted(m for m in sys.modules
                                    if m.startswith(("keras_seq2seq", "keras_hub", "tensorflow_text")))}))
"""


def _run_loader(path, inputs):
    """LOADER's outputs for `inputs` on the export at `path`, in a fresh process."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(path), json.dumps([i.hex() for i in inputs])],
        capture_output=True, text=True, timeout=300, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=str(path.parent),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _encoded_inputs():
    encoded = [text.encode("utf-8") for text in BAD_INPUTS[:-1]]
    return encoded + [b"Mauvais \xff\xfe octets \xc3"]


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    translator = Translator(*load_run(tiny_run[0], "last"))
    path = export_translator(translator, tmp_path_factory.mktemp("export") / "tiny", {"card.md": "tiny"})
    return translator, path


def test_fresh_process_matches_in_process_translations(exported):
    translator, path = exported
    inputs = _encoded_inputs()
    expected = translator.translate(tf.constant(inputs))
    loaded = _run_loader(path, inputs)
    assert loaded["translation"] == [t.decode("utf-8") for t in expected["translation"].numpy()]
    assert loaded["score"] == pytest.approx([float(s) for s in expected["score"].numpy()], abs=1e-4)
    assert loaded["translation"][0] == "I am a student."
    assert len(loaded["translation"]) == len(inputs)
    # Empty and blank sources: empty translations with score 0, in every signature.
    for index in (1, 2):
        assert loaded["translation"][index] == "" and loaded["score"][index] == 0.0
        assert loaded["n_best"][index] == [""] * 4 and loaded["beam_scores"][index] == [0.0] * 4
        assert loaded["sampled"][index] == "" and loaded["sampled_score"][index] == 0.0
    assert all(loaded["n_best"][0]) and loaded["beam_scores"][0][0] < 0
    # Neither this package, keras-hub nor the rest of tensorflow-text was needed to load and run it.
    assert loaded["modules"] == []


def test_the_step_copies_are_stored_as_placeholders_and_made_when_the_export_loads(exported):
    """The export stores the model's weights once: the `StepWeights` copies are `PreparedWeights`,
    computed when the SavedModel loads (the fresh-process test above checks its outputs)."""
    translator, path = exported
    shapes = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_shape_map()
    prepared = [shape for name, shape in shapes.items() if name.startswith("prepared/values/")]
    copies = [leaf for leaf in tf.nest.flatten(translator.step_weights.structure()) if leaf is not None]
    assert len(prepared) == len(copies) > 0
    assert all(shape == [1] for shape in prepared)
    stored = sum(int(np.prod(shape)) for name, shape in shapes.items() if name.startswith("model/"))
    assert stored == translator.model.count_params()
    # The translator that exported goes on translating: its copies were made again once saved.
    assert translator.prepared.ready.numpy()
    assert all(variable.numpy().ndim == 2 for variable in translator.prepared.values)
    text = tf.constant(["Je suis étudiant.", "Il fait beau."])
    assert [t.decode() for t in translator.translate(text)["translation"].numpy()][0] == "I am a student."
    loaded = tf.saved_model.load(str(path))
    assert loaded.prepared.ready.numpy()  # made by the load, before any call
    for mine, theirs in zip(translator.prepared.values, loaded.prepared.values, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_long_input_is_truncated_to_the_model_limit(exported):
    translator, _ = exported
    token_ids = translator.tokenize_source(tf.constant([BAD_INPUTS[3].encode()]))["token_ids"]
    assert token_ids.shape[1] == translator.model.config.max_length


def test_signatures_and_extra_files(exported):
    _, path = exported
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "beam_search", "sample", "tokenize_source"}
    sample = loaded.signatures["sample"]
    args = dict(text=tf.constant(["Je suis étudiant."] * 3), temperature=tf.constant(1.0),
                top_k=tf.constant(1), top_p=tf.constant(1.0), seed=tf.constant(4))
    assert [t.decode() for t in sample(**args)["translation"].numpy()] == ["I am a student."] * 3
    beams = loaded.signatures["beam_search"](text=tf.constant(["Je suis étudiant.", ""]))
    assert beams["n_best"].shape == (2, 4) and beams["scores"].shape == (2, 4)
    assert beams["translation"].numpy()[0].decode() == "I am a student."
    assert (path / "assets.extra" / "card.md").read_text() == "tiny"


def test_saved_model_cli_lists_the_signatures(exported):
    import shutil

    _, path = exported
    tool = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    result = subprocess.run(
        [tool, "show", "--dir", str(path), "--tag_set", "serve"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("serving_default", "beam_search", "sample", "tokenize_source"):
        assert f'"{name}"' in result.stdout


@pytest.mark.parametrize("with_extra_files", [True, False])
def test_an_export_loads_back_into_an_identical_keras_model(exported, tmp_path, with_extra_files):
    import shutil

    import numpy as np

    from keras_seq2seq.errors import InputError

    translator, path = exported
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    if not with_extra_files:  # not a keras-seq2seq export: say what is missing, do not guess
        for name in ("source.spm.model", "target.spm.model"):
            (copy / "assets.extra" / name).unlink()
        with pytest.raises(InputError, match="without source.spm.model, target.spm.model in assets.extra"):
            load_run(copy)
        return
    model, source, target = load_run(copy)
    for original, restored in zip(translator.model.weights, model.weights, strict=True):
        np.testing.assert_array_equal(original.numpy(), restored.numpy())
    assert source.proto == translator.source_tokenizer.proto
    assert target.proto == translator.target_tokenizer.proto
    text = tf.constant(["Je suis étudiant.", "Va !"])
    reloaded = Translator(model, source, target)  # kept: tf.function methods hold their module weakly
    again = reloaded.translate(text)["translation"].numpy()
    assert list(again) == list(translator.translate(text)["translation"].numpy())


def test_each_decoding_loop_is_stored_once(exported):
    """The encoders (of the real tokens, of the padded batch) and each search's parts (its first
    cache block, from the encoder's output and from ids; every later block): eleven XLA-compiled
    functions, not a second trace of any, each part holding one loop (the first from ids: none
    of its own) and called from one or two functions. Loading
    a SavedModel copies every function a function calls into that function's graph: the decoder
    step, called by every loop, is copied once per function above it. With a copy of the encoder
    and the search in each search from ids (14,447 nodes against 9,844 for `small`) loading took
    0.1 GiB and a second more; with a trace per cache block and the later blocks called from a
    `tf.cond` each, 0.15 GiB more (benchmarks/README.md)."""
    from tensorflow.core.protobuf import saved_model_pb2

    _, path = exported
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    functions = saved_model.meta_graphs[0].graph_def.library.function
    short = lambda name: name.removeprefix("__inference_").rsplit("_", 1)[0]
    compiled = sorted(short(f.signature.name) for f in functions if f.attr["_XlaMustCompile"].b)
    parts = [f"{search}_{part}" for search in ("beam", "greedy", "sample")
             for part in ("first_part", "first_part_from_ids", "later_part")]
    assert compiled == sorted(["_encode", "_encode_padded", *parts])
    callers = {}
    for function in functions:
        for node in function.node_def:
            if node.op in ("StatefulPartitionedCall", "PartitionedCall"):
                callers.setdefault(short(node.attr["f"].func.name), []).append(function.signature.name)
    for part in parts:  # the first part: from its search from ids, and after the packed encoder
        assert len(callers[part]) == (2 if part.endswith("first_part") else 1), (part, callers[part])
        (function,) = [f for f in functions if short(f.signature.name) == part]
        loops = sum(node.op in ("While", "StatelessWhile") for node in function.node_def)
        assert loops == (0 if part.endswith("from_ids") else 1)
    steps = sorted(short(f.signature.name) for f in functions if short(f.signature.name).startswith("decoder_step"))
    assert steps == ["decoder_step", "decoder_step_slotted"]


def test_signatures_called_from_8_threads_at_once_give_the_sequential_outputs(exported):
    """Greedy and beam signatures of the loaded SavedModel, 8 threads at once, batches of 1 to 64."""
    from concurrent.futures import ThreadPoolExecutor

    _, path = exported
    loaded = tf.saved_model.load(str(path))
    sentences = ["Je suis étudiant.", "Va !", "Il est là, je crois ?", "Salut.", "Je ne sais pas."]
    requests = [
        (signature, [sentences[(start + i) % len(sentences)] for i in range(size)])
        for start, (signature, size) in enumerate(
            (signature, size) for size in (1, 3, 8, 17, 64) for signature in ("serving_default", "beam_search")
        )
    ]

    def call(request):
        signature, batch = request
        outputs = loaded.signatures[signature](text=tf.constant(batch))
        return {key: value.numpy().tolist() for key, value in outputs.items()}

    sequential = [call(request) for request in requests]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(call, requests * 2))
    assert concurrent == sequential * 2


def test_the_decoder_step_is_stored_once_with_and_once_without_cache_slots(exported):
    """Every loop of every search calls one decoder-step function (`SharedStep`): a copy of the
    decoder per loop made the SavedModel four times the size and its loading four times slower."""
    from tensorflow.core.protobuf import saved_model_pb2

    _, path = exported
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    names = [f.signature.name for f in saved_model.meta_graphs[0].graph_def.library.function]
    steps = sorted(name.removeprefix("__inference_").rsplit("_", 1)[0] for name in names if "decoder_step" in name)
    assert steps == ["decoder_step", "decoder_step_slotted"]


def _function_names(path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return [f.signature.name.removeprefix("__inference_").rsplit("_", 1)[0]
            for f in saved_model.meta_graphs[0].graph_def.library.function]


def test_the_prepared_values_computation_is_stored_once(exported, exported_int8):
    """The `PreparedWeights` are computed by one function, which the load calls: its graph (the step
    copies; with int8, the dequantization too) is stored once, and no signature holds it."""
    for path in (exported[1], exported_int8[1]):
        assert _function_names(path).count("_fill_values") == 1


def test_an_int8_signature_passes_as_many_variables_per_call_as_the_float_one(exported, exported_int8):
    """A loaded function's call passes every variable it captures (microseconds each). An int8
    signature reads the dequantized values in place of the float weights, and not the int8 weights
    they are computed from (the load computes them): as many as the float signature (it passed 291
    against 148 for the shipped model when its first call computed them, 0.7 ms more a call)."""
    counts = []
    for _, path in (exported, exported_int8):
        signatures = tf.saved_model.load(str(path)).signatures
        counts.append([len(signatures[name].captured_inputs) for name in ("serving_default", "beam_search", "sample")])
    assert counts[0] == counts[1], counts


@pytest.fixture(scope="module")
def exported_int8(tiny_run, tmp_path_factory):
    translator = Translator(*load_run(tiny_run[0], "last"), quantize="int8")
    return translator, export_translator(translator, tmp_path_factory.mktemp("export") / "tiny-int8")


def test_an_int8_export_runs_in_a_fresh_process_as_in_process(exported_int8, exported):
    translator, path = exported_int8
    inputs = _encoded_inputs()
    expected = translator.translate(tf.constant(inputs))
    loaded = _run_loader(path, inputs)
    assert loaded["translation"] == [t.decode("utf-8") for t in expected["translation"].numpy()]
    assert loaded["translation"][0] == "I am a student."
    assert loaded["modules"] == []
    # The same signatures; the matrices stored as int8, and no float copy of them.
    signatures = {"serving_default", "beam_search", "sample", "tokenize_source"}
    assert set(tf.saved_model.load(str(path)).signatures) == signatures
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_dtype_map()
    kernels = [name for name in stored if name.endswith("_kernel/.ATTRIBUTES/VARIABLE_VALUE")]
    dense = [layer for layer in translator.quantized_model._flatten_layers() if isinstance(layer, keras.layers.Dense)]
    assert len(kernels) == len(dense) >= 24 and all(stored[name] == tf.int8 for name in kernels)
    # Its float values and step copies are computed by the loaded model: stored as placeholders.
    shapes = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_shape_map()
    prepared = [shape for name, shape in shapes.items() if name.startswith("prepared/values/")]
    assert len(prepared) > len(kernels) and all(shape == [1] for shape in prepared)
    float_size = sum(f.stat().st_size for f in (exported[1] / "variables").iterdir())
    int8_size = sum(f.stat().st_size for f in (path / "variables").iterdir())
    # A quarter of the float kernels' bytes, plus the float biases, norms and scales, which weigh
    # much more in the tiny model than in `small` (17.5 MB against 44.8 MB there).
    assert int8_size < 0.5 * float_size, (int8_size, float_size)


def test_an_int8_export_loads_back_into_the_quantized_keras_model(exported_int8):
    translator, path = exported_int8
    model, _, _ = load_run(path)
    assert model.get_config()["quantization"]["mode"] == "int8"
    for mine, theirs in zip(model.weights, translator.quantized_model.weights, strict=True):
        assert mine.path == theirs.path and mine.dtype == theirs.dtype
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


CONSOLE_TRANSLATE = r"""
import gc, json, sys
from keras_seq2seq import cli
cli._ENDS_PROCESS = True  # what the console script (`cli.run`) sets before it runs the command
cli.main(["translate", "--model", sys.argv[1], "--engine", sys.argv[2], *sys.argv[3:]])
print(json.dumps({"frozen": gc.get_freeze_count(), "collecting": gc.isenabled(),
                  "imported": sorted(m for m in sys.modules
                                     if m.startswith(("keras_hub", "keras_nlp", "tensorflow_text")))}))
"""


@pytest.mark.parametrize("engine", ["eager", "compiled"])
def test_the_console_translate_loads_without_collecting_nor_keras_hub(exported, engine, tmp_path):
    """The console script's `translate` of an export, eager (its Keras model) or compiled (its
    SavedModel): the translations of the SavedModel, keras-hub never imported, nor tensorflow-text
    (its SentencePiece ops registered alone: `data.tokenizers.sentencepiece_ops`); eagerly, no pass of
    the garbage collector while it loads (what it made is frozen after, and collection runs again)."""
    _, path = exported
    sources = ["Je suis étudiant.", "Il fait beau aujourd'hui.", ""]
    expected = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(sources))
    result = subprocess.run(
        [sys.executable, "-c", CONSOLE_TRANSLATE, str(path), engine, *sources],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_SEQ2SEQ_CACHE": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    *translations, report = result.stdout.splitlines()
    assert translations == [text.decode("utf-8") for text in expected["translation"].numpy()]
    report = json.loads(report)
    assert report["imported"] == [] and report["collecting"]
    if engine == "eager":
        assert report["frozen"] > 100_000  # TensorFlow's and the model's objects


@pytest.mark.parametrize("export", ["exported", "exported_int8"])
def test_an_export_run_eagerly_translates_as_its_savedmodel(export, request, tiny_run):
    """`load_translator` (the export's Keras model) under `run_eagerly`, what `translate` does for a
    few sentences: the SavedModel's translations, scores and n-best lists, bad inputs included, and
    nothing left running eagerly afterwards. An int8 export's: a float model of its dequantized
    weights (no quantized model, no float twin built)."""
    from keras_seq2seq.serving import load_translator, run_eagerly
    from keras_seq2seq.serving.quantization import is_quantized

    _, path = request.getfixturevalue(export)  # (both need `tiny_run`, named above: the test is slow)
    text = tf.constant(_encoded_inputs())
    signatures = tf.saved_model.load(str(path)).signatures
    greedy, beam = signatures["serving_default"](text=text), signatures["beam_search"](text=text)
    translator = load_translator(path)
    assert translator.quantized_model is None and not is_quantized(translator.model)
    with run_eagerly():
        assert tf.config.functions_run_eagerly()
        eager_greedy, eager_beam = translator.translate(text), translator.translate_beam(text)
    assert not tf.config.functions_run_eagerly()
    assert translator.beam_size == 4 and translator.length_penalty == 0.6  # the export's (decoding.json)
    assert eager_greedy["translation"].numpy().tolist() == greedy["translation"].numpy().tolist()
    assert eager_beam["n_best"].numpy().tolist() == beam["n_best"].numpy().tolist()
    np.testing.assert_allclose(eager_greedy["score"], greedy["score"], atol=1e-4)
    np.testing.assert_allclose(eager_beam["scores"], beam["scores"], atol=1e-4)


SESSION_LOADER = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
tf.compat.v1.disable_eager_execution()
with tf.compat.v1.Session() as session:
    # What TensorFlow Serving's C++ loader does: import the graph, restore through the saver, run.
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], sys.argv[1])
    results = {}
    for name in ("serving_default", "beam_search"):
        signature = meta_graph.signature_def[name]
        feed = {signature.inputs["text"].name: json.loads(sys.argv[2])}
        results[name] = [t.decode("utf-8") for t in session.run(signature.outputs["translation"].name, feed)]
print(json.dumps(results))
"""


def test_an_exports_functions_are_stored_in_fewer_nodes(exported, exported_int8):
    """The export stores its functions simplified (`serving.graph_pass`): no node left that an earlier one
    of its function computes the same as, no pass-through identity, no shape check of a prepared value."""
    from tensorflow.core.protobuf import saved_model_pb2

    from keras_seq2seq.serving.graph_pass import simplify_functions

    for _, path in (exported, exported_int8):
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        library = saved_model.meta_graphs[0].graph_def.library
        before, after = simplify_functions(library)
        assert before == after
        assert not [node.name for f in library.function for node in f.node_def if node.op == "EnsureShape"]


@pytest.mark.parametrize("export", ["exported", "exported_int8"])
def test_an_export_runs_restored_by_its_saver_as_tensorflow_serving_loads_it(export, request, tiny_run):
    """TensorFlow Serving (and `tf.compat.v1` sessions, `saved_model_cli run`) restore a SavedModel's
    variables through its saver, not its object graph: Keras saved each of its variables a second
    time, the saver restored that copy, and every call failed with "Could not find variable" until
    the export saved them once (`serving.saved_model._keras_variables_saved_once`). Restored so, the
    signatures translate as `tf.saved_model.load`'s; the graph holds one variable per stored value."""
    from tensorflow.core.protobuf import saved_model_pb2

    _, path = request.getfixturevalue(export)  # (both need `tiny_run`, named above: the test is slow)
    sources = ["Je suis étudiant.", "", "Il fait beau aujourd'hui.", "Salut 😀🎉 !"]
    signatures = tf.saved_model.load(str(path)).signatures
    expected = {name: [t.decode("utf-8") for t in signatures[name](text=tf.constant(sources))["translation"].numpy()]
                for name in ("serving_default", "beam_search")}
    result = subprocess.run(
        [sys.executable, "-c", SESSION_LOADER, str(path), json.dumps(sources)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
    assert expected["serving_default"][:2] == ["I am a student.", ""]
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    handles = [node.attr["shared_name"].s.decode() for node in saved_model.meta_graphs[0].graph_def.node
               if node.op == "VarHandleOp"]
    stored = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_shape_map()
    # One handle a stored value (less the checkpoint's object graph entry), besides `PreparedWeights`' load marker.
    assert len([name for name in handles if name != LOAD_MARKER]) == len(stored) - 1 and LOAD_MARKER in handles


def test_exporting_leaves_keras_variables_as_they_were():
    from keras.src.backend.tensorflow.core import Variable

    from keras_seq2seq.serving.saved_model import _keras_variables_saved_once

    original = Variable._export_to_saved_model_graph
    with _keras_variables_saved_once():
        assert Variable._export_to_saved_model_graph is not original
    assert Variable._export_to_saved_model_graph is original


def test_each_int8_function_reads_the_dequantized_values_of_the_variables_the_float_one_reads(exported, exported_int8):
    """Each value an int8 function reads is nodes in its graph (held in memory once per function by
    a loaded SavedModel) and an argument of its every call: the encoder functions read the encoder's
    values and the cross-attention's key and value projections, as many as the variables the float
    ones capture; the searches' decoder step takes the float one's arguments, one value per variable
    the float step reads in place of those variables."""
    translator, path = exported_int8
    sides = translator._variables
    assert len(sides["encoder"]) >= 20 and len(sides["decoder"]) >= 30
    assert {id(v) for v in sides["decoder"]} <= {id(v) for v in translator.model.decoder.weights}
    from tensorflow.core.protobuf import saved_model_pb2

    def arguments(path, name):
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
        (function,) = [f for f in saved_model.meta_graphs[0].graph_def.library.function
                       if f.signature.name.removeprefix("__inference_").rsplit("_", 1)[0] == name]
        arguments = function.signature.input_arg
        return len(arguments), sum(argument.type == tf.resource.as_datatype_enum for argument in arguments)

    (count, resources), (float_count, float_resources) = (arguments(p, "decoder_step") for p in (path, exported[1]))
    assert resources == 0 and float_resources == len(sides["decoder"])
    assert count == float_count - float_resources + len(sides["decoder"])
    for name in ("_encode", "_encode_padded"):  # (they read their variables: resources)
        assert arguments(path, name) == arguments(exported[1], name)
        assert arguments(path, name)[1] == len(sides["encoder"])


def test_an_export_whose_saver_would_restore_copies_warns(tiny_run, tmp_path, monkeypatch):
    """Without `_keras_variables_saved_once` (Keras' own export of its variables), the export warns
    that TensorFlow Serving would fail; with it, nothing is said."""
    import contextlib
    import warnings

    from keras_seq2seq.serving import saved_model

    translator = Translator(*load_run(tiny_run[0], "last"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_translator(translator, tmp_path / "fixed")
    assert not [w for w in caught if "TensorFlow Serving" in str(w.message)]
    monkeypatch.setattr(saved_model, "_keras_variables_saved_once", contextlib.nullcontext)
    with pytest.warns(UserWarning, match=r"holds \d+ variables for \d+ stored values.*TensorFlow Serving"):
        export_translator(translator, tmp_path / "as_keras_saves")
