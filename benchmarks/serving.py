"""Serving cost of an export: memory, time to the first translation, dev throughput (issue 21).

    .venv/bin/python benchmarks/serving.py [--models saved_models/fr-en-small saved_models/fr-en-small-int8]
                                           [--ct2 DIR] [--skip-throughput] [--envs DIR]
                                           [--target-runs N] [--target-only]

Each case runs in a fresh process, one after the other in this one invocation, and the
table compares them (on a shared 2-core machine, compare figures of one invocation only).
The SavedModels run in virtual environments holding `tensorflow` and tensorflow-text only, as a
server would (made once under `--envs`, from the package index; this environment's other
packages change the figures: Keras imports JAX when it is installed, 0.1 GiB):

- `import`: `import tensorflow` and tensorflow-text's SentencePiece ops, nothing else (the floor of
  any TF server of our exports), and `import tensorflow, tensorflow_text` (all of tensorflow-text's ops,
  as issue 21 measured: 0.1 GiB more).
- `savedmodel`: `tf.saved_model.load`, the SentencePiece ops registered as the README does (only
  them; the columns "import tensorflow_text": with all of tensorflow-text's ops, no throughput);
  peak resident memory after loading, after the first greedy translation of one sentence, and
  after greedy and beam 4 on batches of 64 dev sentences, then after 8 threads at once each run
  greedy and beam 4 on batches of 1 to 64 sentences (as a server sees them: new batch sizes
  compile while others translate); seconds from the process start.
- `session`: the same steps through a `tf.compat.v1` session and the SavedModel's saver, the
  way TensorFlow Serving's C++ loader reads it (one graph; no Python function objects).
- `tensorflow-cpu`: the `savedmodel` case with TensorFlow's CPU build (it maps no CUDA library).
- `cli`: `keras-seq2seq translate --model M "Je suis étudiant."` in this environment, wall time of
  the command: as it runs by default (eagerly, from the export's Keras model; the median of 3
  runs), and with `--engine compiled` (the SavedModel's XLA functions), first with no program
  kept, then with the programs the command kept from that run (in a temporary
  `KERAS_SEQ2SEQ_CACHE`).
- `ct2`: the same weights in CTranslate2 (int8, converted by `export --format ctranslate2`),
  the same steps.
- throughput: all `dev.txt` sentences in batches of 64 in file order, greedy and beam 4,
  sentences per second, for the SavedModel and CTranslate2 int8 (each in the process of its
  `savedmodel` / `ct2` case, after that case's steps: the programs those compiled are reused).
- paired (two models or more): the same passes, twice (the first compiles each batch shape's
  programs, the second runs them), with every model loaded in one process, each batch run by
  each model in turn (the order reversed every other batch), in two processes: their ratios,
  measured in the same seconds. A process's figures vary by up to a third
  between processes here (XLA's programs, the shared host), more than float and int8 differ.
- `target`: issue 21's target as worded (load, then greedy and beam 4 on 64 dev sentences,
  nothing else) in `--target-runs` fresh processes per export and per process setting: the
  SentencePiece ops registered alone, `import tensorflow_text`, and the ops with
  `MALLOC_ARENA_MAX=1` (one glibc heap for all threads).

Peak resident memory is `ru_maxrss` of the measuring process (Linux keeps it across exec,
so this script itself imports neither TensorFlow nor the package). Beside it, each step's
`RssAnon`: what the process allocated itself, without the file pages of the libraries it ran
(which a container's memory limit drops and reads again: `container.py` runs the case under one).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "Je suis étudiant."
SHIPPED = ("fr-en-small", "fr-en-small-int8")
DEFAULT_ENVS = str(Path.home() / ".cache" / "keras_seq2seq" / "serving-envs")

CASE = r"""
import json, os, resource, sys, time
started, kind, model, dev = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
throughput, threads, imports = sys.argv[5] == "1", sys.argv[6] == "threads", sys.argv[7]
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
def now(): return time.time() - started
def anonymous():  # what the process allocated itself, resident (not the libraries' file pages)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssAnon")) / 2**20
marks = {}  # step -> (seconds from the start, peak GiB, anonymous GiB)
def mark(step):  # (printed at once too: container.py follows the steps as they end)
    marks[step] = (now(), rss(), anonymous())
    print(json.dumps({"mark": [step, *marks[step]]}), flush=True)
sources = [line.split("\t")[1] for line in open(dev, encoding="utf-8") if line.count("\t") >= 1]
batches = [sources[i:i + 64] for i in range(0, len(sources), 64)]
SIGNATURES = {"greedy": "serving_default", "beam": "beam_search"}
def import_tensorflow():  # and tensorflow-text's SentencePiece ops: only them (the README's way), or all
    import tensorflow as tf
    if imports == "ops":
        import importlib.util
        text = importlib.util.find_spec("tensorflow_text").submodule_search_locations[0]
        tf.load_op_library(os.path.join(text, "python", "ops", "_sentencepiece_tokenizer.so"))
    else:
        import tensorflow_text
    return tf
if kind in ("import", "savedmodel", "session", "target"):
    tf = import_tensorflow()
    mark("import")
    if kind in ("savedmodel", "target"):
        signatures = tf.saved_model.load(model).signatures
        def call(batch, search):
            outputs = signatures[SIGNATURES[search]](text=tf.constant(batch))
            return [t.decode() for t in outputs["translation"].numpy()]
    elif kind == "session":  # TensorFlow Serving's way: one graph, variables restored by the saver
        tf.compat.v1.disable_eager_execution()
        session = tf.compat.v1.Session()
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], model)
        tensors = {search: (meta_graph.signature_def[name].inputs["text"].name,
                            meta_graph.signature_def[name].outputs["translation"].name)
                   for search, name in SIGNATURES.items()}
        def call(batch, search):
            text, translation = tensors[search]
            return [t.decode() for t in session.run(translation, {text: batch})]
elif kind == "paired":  # several SavedModels in this process, every batch run by each in turn
    tf = import_tensorflow()
    loaded = [tf.saved_model.load(path) for path in model.split(os.pathsep)]
    searches = [{"greedy": m.signatures["serving_default"], "beam": m.signatures["beam_search"]} for m in loaded]
    paired = {}
    for search in ("greedy", "beam"):
        for number in (1, 2):  # the first pass compiles each shape's programs; the second runs them
            spent = [0.0] * len(loaded)
            for index, batch in enumerate(batches):
                text = tf.constant(batch)
                for m in (range(len(loaded)) if index % 2 == 0 else reversed(range(len(loaded)))):
                    begin = time.perf_counter()
                    searches[m][search](text=text)["translation"].numpy()
                    spent[m] += time.perf_counter() - begin
            paired[f"{search}, pass {number}"] = [len(sources) / seconds for seconds in spent]
    print(json.dumps({"paired": paired}))
    sys.exit(0)
else:
    import ctranslate2, sentencepiece
    mark("import")
    translator = ctranslate2.Translator(model, device="cpu", compute_type="int8", intra_threads=os.cpu_count())
    source_sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model, "source.spm.model"))
    target_sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model, "target.spm.model"))
    def call(batch, search):
        # Within the model's 128 positions, as the SavedModel truncates (one dev source is longer).
        pieces = [source_sp.encode(text, out_type=str)[:126] for text in batch]
        results = translator.translate_batch(pieces, beam_size=1 if search == "greedy" else 4, max_batch_size=64,
                                             max_decoding_length=126)
        return [target_sp.decode(result.hypotheses[0]) for result in results]
first = None
if kind != "import":
    mark("load")
    if kind != "target":  # (issue 21's target: load, then greedy and beam 4 on 64 sentences, nothing else)
        first = call(["Je suis étudiant."], "greedy")[0]
        mark("first translation")
    call(batches[0], "greedy"); mark("greedy, 64 sentences")
    call(batches[0], "beam"); mark("beam 4, 64 sentences")
    if kind == "target":
        print(json.dumps({"marks": marks}))
        sys.exit(0)
    # A server's load: 8 threads at once, each through the batch sizes 1, 2, 4, ... 64 (starting at a
    # different one), greedy and beam 4 in turn; new sizes compile while other threads translate.
    from concurrent.futures import ThreadPoolExecutor
    sizes = [1, 2, 4, 8, 16, 32, 64]
    def serve(thread):
        for turn in range(len(sizes)):
            size = sizes[(thread + turn) % len(sizes)]
            start = (thread * 7 + turn * 64) % (len(sources) - size)
            call(sources[start:start + size], "greedy" if (thread + turn) % 2 == 0 else "beam")
    if threads:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(serve, range(8)))  # (re-raises a thread's error: the case fails)
        mark("8 threads, greedy and beam 4, batches of 1 to 64")
rates = {}
if throughput and kind != "import":
    for search in ("greedy", "beam"):
        begin = time.perf_counter()
        for batch in batches:
            call(batch, search)
        rates[search] = len(sources) / (time.perf_counter() - begin)
        print(json.dumps({"rate": [search, rates[search]]}), flush=True)
    mark("then all of dev.txt, greedy and beam 4, batches of 64")
print(json.dumps({"marks": marks, "rates": rates, "first": first}))
"""


CASE_ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def case_command(kind, model, dev, throughput, python=sys.executable, threads=True, imports="ops"):
    """The command line of `CASE` (its seconds counted from now), and the time it counts from.

    `imports`: "ops", tensorflow-text's SentencePiece ops only (as the README loads an export), or
    "tensorflow_text", `import tensorflow_text` (all its ops)."""
    started = time.time()
    command = [str(python), "-c", CASE, str(started), kind, str(model), str(dev), "1" if throughput else "0",
               "threads" if threads else "no-threads", imports]
    return command, started


def run_case(kind, model, dev, throughput, python=sys.executable, imports="ops", environment=None):
    """`CASE`'s result; `environment`: variables set for its process, besides `CASE_ENVIRONMENT`."""
    command, _ = case_command(kind, model, dev, throughput, python, imports=imports)
    result = subprocess.run(command, capture_output=True, text=True, env={**CASE_ENVIRONMENT, **(environment or {})})
    if result.returncode:
        raise RuntimeError(f"{kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cli_first_translation(model, engine="auto", cache=None):
    """Wall seconds and output of `keras-seq2seq translate --model M --engine E "Je suis étudiant."`
    (`cache`: the command's cache directory, `KERAS_SEQ2SEQ_CACHE`, where it keeps XLA's programs)."""
    started = time.time()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "keras-seq2seq"), "translate", "--model", str(model), "--engine", engine,
         SENTENCE],
        capture_output=True, text=True, env={**os.environ, **({"KERAS_SEQ2SEQ_CACHE": str(cache)} if cache else {})},
    )
    return time.time() - started, result.stdout.strip()


def cli_cases(model, work):
    """`keras-seq2seq translate` of one sentence: eager (the median of 3 runs), then compiled with no
    XLA program kept yet, then again with the programs the run before kept."""
    eager = sorted(cli_first_translation(model) for _ in range(3))[1]
    cache = Path(work) / f"cache-{Path(model).name}"
    return eager, cli_first_translation(model, "compiled", cache), cli_first_translation(model, "compiled", cache)


def ct2_model(model, directory):
    """A CTranslate2 int8 conversion of the export's weights, with its SentencePiece models beside it."""
    import shutil

    subprocess.run(
        [str(Path(sys.executable).parent / "keras-seq2seq"), "export", str(model), "--output", str(directory),
         "--format", "ctranslate2", "--quantization", "int8"],
        check=True, capture_output=True,
    )
    for name in ("source.spm.model", "target.spm.model"):
        shutil.copy(Path(model) / "assets.extra" / name, Path(directory) / name)
    return directory


def environment(directory, tensorflow):
    """The python of a virtual environment at `directory` (made if missing) holding only what a
    SavedModel needs: `tensorflow` ("tensorflow", or "tensorflow-cpu": its CPU build, which maps
    no CUDA library) at this environment's TensorFlow version, and tensorflow-text."""
    from importlib.metadata import version

    directory = Path(directory)
    python = directory / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"{tensorflow}=={version('tensorflow')}"], check=True)
        # tensorflow-text asks for `tensorflow`, which tensorflow-cpu is.
        subprocess.run([*pip, "--no-deps", f"tensorflow-text=={version('tensorflow-text')}"], check=True)
    return python


def default_dev():
    """The default corpus's dev.txt (asked in a child: importing the package here would raise every
    child's peak resident memory, which Linux carries across `exec`)."""
    return subprocess.run(
        [sys.executable, "-c", "from keras_seq2seq.data.fetch import default_corpus_files as f; print(f()['dev'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[str(ROOT / "saved_models" / name) for name in SHIPPED],
                        help="SavedModels to measure (default: the shipped float and int8 exports)")
    parser.add_argument("--dev", help="dev.txt (default: the default corpus's)")
    parser.add_argument("--ct2", help="a CTranslate2 conversion (default: the first model's, converted now, int8)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--target-runs", type=int, default=5, metavar="N",
                        help="fresh processes of issue 21's target case per model and setting (default: %(default)s)")
    parser.add_argument("--target-only", action="store_true", help="run the target case only")
    parser.add_argument("--envs", metavar="DIR", default=DEFAULT_ENVS,
                        help="where the environments of tensorflow and tensorflow-text only are made, once "
                             "(default: %(default)s)")
    args = parser.parse_args()
    args.dev = args.dev or default_dev()
    names = [Path(model).name for model in args.models]
    tensorflow = environment(Path(args.envs) / "tensorflow", "tensorflow")
    tensorflow_cpu = environment(Path(args.envs) / "tensorflow-cpu", "tensorflow-cpu")
    if args.target_only:
        print_target(target_cases(names, args.models, args.dev, tensorflow, args.target_runs))
        return
    with tempfile.TemporaryDirectory() as work:
        ct2 = args.ct2 or ct2_model(args.models[0], Path(work) / "ct2")
        baselines = {
            (label, imports): run_case("import", args.models[0], args.dev, False, python=python, imports=imports)
            for label, python in (("tensorflow", tensorflow), ("tensorflow-cpu", tensorflow_cpu))
            for imports in ("ops", "tensorflow_text")
        }
        results = {}
        for name, model in zip(names, args.models):
            results[name] = run_case("savedmodel", model, args.dev, not args.skip_throughput, python=tensorflow)
            results[f"{name}, import tensorflow_text"] = run_case(
                "savedmodel", model, args.dev, False, python=tensorflow, imports="tensorflow_text")
            results[f"{name}, session"] = run_case("session", model, args.dev, False, python=tensorflow)
            results[f"{name}, tensorflow-cpu"] = run_case("savedmodel", model, args.dev, False, python=tensorflow_cpu)
        results["CTranslate2 int8"] = run_case("ct2", ct2, args.dev, not args.skip_throughput)
        cli = {name: cli_cases(model, work) for name, model in zip(names, args.models)}
        paired = []
        if not args.skip_throughput and len(args.models) > 1:
            paired = [run_case("paired", os.pathsep.join(args.models), args.dev, True, python=tensorflow)["paired"]
                      for _ in range(2)]
        target = target_cases(names, args.models, args.dev, tensorflow, args.target_runs)

    for (label, imports), case in baselines.items():
        seconds, memory, anonymous = case["marks"]["import"]
        what = "`import tensorflow, tensorflow_text`"
        if imports == "ops":
            what = "`import tensorflow` and the SentencePiece ops"
        print(f"{what} alone ({label}): {seconds:.1f} s, {memory:.2f} GiB peak RSS, "
              f"{anonymous:.2f} RssAnon")
    print()
    for name, model in zip(names, args.models):
        size_mb = sum(f.stat().st_size for f in Path(model).rglob("*") if f.is_file()) / 1e6
        (eager, said), (compiled, said_compiled), (cached, _) = cli[name]
        print(f"- {name}: {size_mb:.1f} MB; `keras-seq2seq translate` of one sentence from a fresh process: "
              f"{eager:.1f} s wall ({said!r}; eager, the default for a few sentences; median of 3), "
              f"{compiled:.1f} s with `--engine compiled` ({said_compiled!r}), {cached:.1f} s with its XLA "
              f"programs kept from that run")
    print("\nPeak resident memory, GiB (seconds from the process start), then the resident memory the "
          "process allocated itself (`RssAnon`; the rest is file pages of the libraries):\n")
    print("| step | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for step in results[names[0]]["marks"]:
        cells = [results[name]["marks"].get(step) for name in results]
        print(f"| {step} | " + " | ".join(
            f"{peak:.2f} ({seconds:.1f} s), {anonymous:.2f}" if cell else "" for cell in cells
            for seconds, peak, anonymous in [cell or (0, 0, 0)]) + " |")
    if not args.skip_throughput:
        print("\nAll of dev.txt in batches of 64, sentences per second (ratio to CTranslate2 int8):\n")
        print("| search | " + " | ".join(results) + " |")
        print("|---|" + "---|" * len(results))
        for search, label in (("greedy", "greedy"), ("beam", "beam 4")):
            reference = results["CTranslate2 int8"]["rates"][search]
            print(f"| {label} | " + " | ".join(
                f"{results[name]['rates'][search]:.1f} ({results[name]['rates'][search] / reference:.2f}x)"
                if results[name]["rates"] else "" for name in results) + " |")
    if paired:
        print(f"\nPaired in one process (each batch run by every model in turn), sentences per second, "
              f"and the ratio of each to {names[0]}, in two processes:\n")
        print("| search | process | " + " | ".join(names) + " |")
        print("|---|---|" + "---|" * len(names))
        for search in paired[0]:
            for number, rates in enumerate(paired, 1):
                print(f"| {search.replace('beam', 'beam 4')} | {number} | " + " | ".join(
                    f"{rate:.1f} ({rate / rates[search][0]:.3f}x)" for rate in rates[search]) + " |")
    if target:
        print_target(target)


# How a target case's process is set up: {label: (imports, environment variables)}.
TARGET_SETTINGS = {
    "the SentencePiece ops": ("ops", {}),
    "`import tensorflow_text`": ("tensorflow_text", {}),
    # One glibc heap for every thread: the memory a compilation freed is reused by the next one.
    "the SentencePiece ops, `MALLOC_ARENA_MAX=1`": ("ops", {"MALLOC_ARENA_MAX": "1"}),
}


def target_cases(names, models, dev, python, runs):
    """Issue 21's target, as it is worded: peak resident memory after loading, then greedy and beam 4
    on a batch of 64 dev sentences, nothing else, in `runs` fresh processes per model and per
    `TARGET_SETTINGS` entry (the figure moves between processes: which thread's heap keeps the
    memory a compilation freed). {(name, setting): [marks of each run]}."""
    return {
        (name, setting): [run_case("target", model, dev, False, python=python, imports=imports,
                                   environment=environment)["marks"] for _ in range(runs)]
        for name, model in zip(names, models) for setting, (imports, environment) in TARGET_SETTINGS.items()
    }


def print_target(target):
    print("\nIssue 21's target (load, then greedy and beam 4 on 64 dev sentences; fresh processes): peak "
          "GiB after each step, the lowest and highest of the runs, then `RssAnon` after the last:\n")
    print("| export | process | runs | loaded | greedy, 64 sentences | beam 4, 64 sentences | `RssAnon` |")
    print("|---|---|---|---|---|---|---|")
    def span(runs, step, index=1):  # "lowest-highest" of the runs (one figure when they agree)
        values = sorted({f"{min(r[step][index] for r in runs):.2f}", f"{max(r[step][index] for r in runs):.2f}"})
        return "-".join(values)

    for (name, setting), runs in target.items():
        print(f"| {name} | {setting} | {len(runs)} | {span(runs, 'load')} | {span(runs, 'greedy, 64 sentences')} | "
              f"**{span(runs, 'beam 4, 64 sentences')}** | {span(runs, 'beam 4, 64 sentences', 2)} |")


if __name__ == "__main__":
    main()
