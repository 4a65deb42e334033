"""The `keras-seq2seq` command: train, export, translate, evaluate."""

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_seq2seq.errors import InputError, WorkerLost  # noqa: E402

BATCH_SIZE = 64
# `translate --engine auto`: up to this many sentences run eagerly (no compilation, about
# 1 s for the first sentence after the model loads, 1-2 s a batch of 64); more, compiled
# (seconds of compilation per batch shape, then 2-3 times faster).
EAGER_SENTENCES = 64
MAX_BEAM_SIZE = 64


# Set by `run` (the console script) for a command the process ends after.
_ENDS_PROCESS = False


@contextlib.contextmanager
def loading():
    """Within (a model being loaded, TensorFlow imported): in the console script, Python's
    cyclic garbage collector does not run; on exit, what was made stays out of its later passes
    (`gc.freeze`) and it runs again.

    Importing TensorFlow and loading a model create millions of objects and few cycles: the
    collector's passes over them took 0.6 s of the 3.4 s import, and a full pass during a first
    translation 0.2 s more (benchmarks/README.md). Frozen, they are kept for the process's life:
    only where the process ends with the command (`run`), not when `main` is called in a
    longer-lived process.
    """
    if not _ENDS_PROCESS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def load_translate_fn(model_path, beam=False, n_best=1, sampling=None, eager=False):
    """A function list[str] -> list[str] for a SavedModel directory or a training run directory.

    Greedy by default; `beam` uses the model's beam search (`beam_search` signature), and
    `n_best` > 1 then returns, per sentence, its best `n_best` translations joined by
    newlines with their scores; `sampling` (a dict of temperature, top_k, top_p, seed)
    draws the translation instead (`sample` signature).

    `eager`: run the model op by op (`serving.run_eagerly`) instead of loading the
    SavedModel's compiled functions: the same translations, seconds sooner for a few
    sentences, slower per batch (a SavedModel not exported by keras-seq2seq is loaded as such).
    """
    import contextlib

    import tensorflow as tf

    from keras_seq2seq.runs import RunDirectory, describe_non_model, load_run
    from keras_seq2seq.serving.saved_model import MODEL_CONFIG, is_saved_model, load_saved_model

    scope = contextlib.nullcontext
    saved_model = is_saved_model(model_path)
    if saved_model and not (eager and (Path(model_path) / "assets.extra" / MODEL_CONFIG).is_file()):
        module = load_saved_model(model_path)
        signature = module.signatures["sample" if sampling else "beam_search" if beam else "serving_default"]
    elif saved_model or RunDirectory.is_run(model_path):
        from keras_seq2seq.serving import Translator, load_translator, run_eagerly

        if saved_model:  # eager: the export's Keras model
            module = load_translator(model_path)
        else:
            module = Translator(*load_run(model_path), jit_compile=not eager)
        scope = run_eagerly if eager else scope
        signature = module.translate_sample if sampling else module.translate_beam if beam else module.translate
    else:
        raise InputError(describe_non_model(model_path))

    extra = {}
    if sampling:
        extra = {
            "temperature": tf.constant(sampling["temperature"], tf.float32),
            "top_k": tf.constant(sampling["top_k"], tf.int32),
            "top_p": tf.constant(sampling["top_p"], tf.float32),
            "seed": tf.constant(sampling["seed"], tf.int32),
        }

    def translate(sentences):
        # `module` stays referenced here: its tf.functions hold it only weakly.
        with scope():
            outputs = signature(text=tf.constant(sentences, tf.string), **extra) if module else None
        if beam and n_best > 1:
            return [
                "\n".join(f"{score:.3f}\t{text.decode('utf-8')}" for text, score in zip(texts[:n_best], scores))
                for texts, scores in zip(outputs["n_best"].numpy(), outputs["scores"].numpy())
            ]
        return [text.decode("utf-8") for text in outputs["translation"].numpy()]

    return translate


def translate_all(translate, sentences, progress=False):
    results = []
    for start in range(0, len(sentences), BATCH_SIZE):
        results.extend(translate(sentences[start : start + BATCH_SIZE]))
        if progress:
            print(f"\rtranslated {len(results)}/{len(sentences)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return results


def command_train(args):
    from keras_seq2seq import trainer
    from keras_seq2seq.run_config import load_config

    config = load_config(args.config, args.overrides)
    output = args.output or Path("runs") / Path(args.config).stem
    _check_output_directory(output, "--output")
    trainer.train(config, output)
    print(f"run directory: {output}\nexport it with: keras-seq2seq export {output} --output saved_models/NAME")


def command_export(args):
    from keras_seq2seq.runs import load_run
    from keras_seq2seq.serving import Translator, export_translator

    run_dir = Path(args.run_dir)
    _check_output_directory(args.output, "--output")
    from keras_seq2seq.serving.saved_model import decoding_settings

    # Unset: an export re-exported keeps its own; otherwise 4 beams and alpha 0.6.
    settings = {"beam_size": 4, "length_penalty": 0.6, **decoding_settings(run_dir)}
    args.beam_size = settings["beam_size"] if args.beam_size is None else args.beam_size
    args.length_penalty = settings["length_penalty"] if args.length_penalty is None else args.length_penalty
    if not 1 <= args.beam_size <= MAX_BEAM_SIZE:
        raise InputError(f"--beam-size {args.beam_size}: give a whole number from 1 to {MAX_BEAM_SIZE}")
    if not 0.0 <= args.length_penalty <= 10.0:  # also refuses nan
        raise InputError(f"--length-penalty {args.length_penalty}: give a number from 0 (none) to 10")
    loaded = load_run(run_dir, args.checkpoint)
    if args.format == "ctranslate2":
        from keras_seq2seq.ctranslate2 import convert

        path = convert(*loaded, args.output, quantization=args.quantization or args.quantize)
        print(f"CTranslate2 model written to {path} (it takes and returns SentencePiece pieces)")
        return
    translator = Translator(
        *loaded, beam_size=args.beam_size, length_penalty=args.length_penalty, jit_compile=not args.no_xla,
        quantize=args.quantize,
    )
    config = run_dir / "config.json"
    if not config.exists():  # re-exporting an export
        config = run_dir / "assets.extra" / "config.json"
    extra = {"config.json": config.read_text()} if config.exists() else {}
    path = export_translator(translator, args.output, extra)
    print(f"exported to {path}; try: keras-seq2seq translate --model {path} \"Je suis étudiant.\"")


def command_average(args):
    from keras_seq2seq.averaging import average_run

    output, averaged = average_run(args.run_dir, args.last, args.checkpoints, args.output)
    checkpoint = _checkpoint_argument(args.run_dir, output)
    print(f"averaged {', '.join(path.name for path in averaged)} into {output}\n"
          f"export it with: keras-seq2seq export {args.run_dir} --checkpoint {checkpoint} --output saved_models/NAME")


def _checkpoint_argument(run_dir, weights):
    """How `export --checkpoint` names `weights`: its name when it is in the run's checkpoints/."""
    from keras_seq2seq.runs import RunDirectory

    inside = Path(weights).resolve().parent == RunDirectory(run_dir).checkpoints.resolve()
    return Path(weights).name[: -len(".weights.h5")] if inside else str(weights)


def command_translate(args):
    sampling = None
    if args.sample:
        sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}
    if args.text:
        sentences, progress = list(args.text), False
    else:
        if args.file and not Path(args.file).is_file():
            raise InputError(f"--file {args.file}: no such file (one sentence a line, UTF-8)")
        stream = open(args.file, encoding="utf-8", errors="replace") if args.file else sys.stdin
        sentences, progress = [line.rstrip("\n") for line in stream], bool(args.file)
    # (Sampling stays compiled: XLA draws other numbers from a seed than TensorFlow's kernels.)
    few = len(sentences) <= EAGER_SENTENCES and not args.sample
    eager = args.engine == "eager" or (args.engine == "auto" and few)
    if not eager:
        keep_xla_programs()
    with loading():
        translate = load_translate_fn(args.model, args.beam or args.n_best > 1, args.n_best, sampling, eager)
    for translation in translate_all(translate, sentences, progress):
        print(translation)


def command_evaluate(args):
    import sacrebleu

    from keras_seq2seq.data.corpora import read_tatoeba

    if not Path(args.data).is_file():
        raise InputError(f"--data {args.data}: no such file (a Tatoeba-format pair file, English<TAB>other)")
    pairs, report = read_tatoeba(args.data, args.direction)
    print(report.summary(), file=sys.stderr)
    if not pairs:
        raise InputError(f"--data {args.data} holds no usable pair: {report.summary()}")
    if args.limit:
        pairs = pairs[: args.limit]
    with loading():
        translate = load_translate_fn(args.model, args.beam)
    started = time.time()
    hypotheses = translate_all(translate, [source for source, _ in pairs], progress=True)
    seconds = time.time() - started
    references = [target for _, target in pairs]
    bleu_metric, chrf_metric = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    scores = {
        "model": str(args.model),
        "data": str(args.data),
        "decoding": "beam search" if args.beam else "greedy",
        "sentences": len(pairs),
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "bleu_signature": str(bleu_metric.get_signature()),
        "chrf_signature": str(chrf_metric.get_signature()),
        "seconds": round(seconds, 1),
    }
    output = Path(args.output or f"{Path(args.model).name}-evaluation")
    output.mkdir(parents=True, exist_ok=True)
    (output / "hypotheses.txt").write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
    (output / "scores.json").write_text(json.dumps(scores, indent=2))
    print(f"sacreBLEU {scores['bleu']}  chrF {scores['chrf']}  on {len(pairs)} sentences "
          f"({seconds:.0f} s); hypotheses and scores in {output}")
    return scores


def command_plot_attention(args):
    from keras_seq2seq.runs import load_run
    from keras_seq2seq.visualize import plot_cross_attention

    translation = plot_cross_attention(*load_run(args.model), args.sentence, args.output)
    print(f"{args.sentence} -> {translation}\ncross-attention plot: {args.output}")


def command_fetch_corpus(args):
    from keras_seq2seq.data.fetch import default_corpus_files

    files = default_corpus_files()
    print(f"Tatoeba French-English (CC-BY 2.0 FR, tatoeba.org via manythings.org/anki):\n"
          f"  train: {files['train']}\n  dev:   {files['dev']}")


def _check_output_directory(path, option):
    if Path(path).exists() and not Path(path).is_dir():
        raise InputError(f"{option} {path} is a file; give a directory path (it is created if missing)")


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-seq2seq", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a YAML config")
    train.add_argument("--config", required=True)
    train.add_argument("--output", help="run directory (default: runs/CONFIG_NAME)")
    train.add_argument("overrides", nargs="*", help="section.key=value")
    train.set_defaults(function=command_train)

    export = commands.add_parser("export", help="export a run as a string-to-string SavedModel")
    export.add_argument("run_dir", help="a training run directory, or an exported SavedModel to re-export")
    export.add_argument("--output", required=True)
    export.add_argument(
        "--checkpoint", default="best",
        help="best, last, epoch-NNN, another name under the run's checkpoints/, or a .weights.h5 file",
    )
    export.add_argument("--format", default="saved_model", choices=["saved_model", "ctranslate2"])
    export.add_argument(
        "--beam-size", type=int, help="the beam_search signature's beams (default: the re-exported export's, or 4)"
    )
    export.add_argument(
        "--length-penalty", type=float,
        help="the beam_search signature's length normalisation exponent alpha (GNMT; 0: none; "
             "default: the re-exported export's, or 0.6)",
    )
    export.add_argument("--no-xla", action="store_true", help="decode without XLA (runtimes that lack it)")
    export.add_argument("--quantization", default=None, help="ctranslate2 only: int8, bfloat16, ...")
    export.add_argument(
        "--quantize", choices=["int8"], help="store int8 weights (per-output-channel scales; a quarter of the size)"
    )
    export.set_defaults(function=command_export)

    average = commands.add_parser("average", help="average a run's last epoch checkpoints into one")
    average.add_argument("run_dir", help="a training run directory (trained with training.keep_checkpoints)")
    average.add_argument("--last", type=int, default=5, help="how many of the last epoch checkpoints (default 5)")
    average.add_argument("--checkpoints", nargs="+", help="average these instead (names under checkpoints/ or files)")
    average.add_argument("--output", help="default: RUN_DIR/checkpoints/averaged.weights.h5")
    average.set_defaults(function=command_average)

    translate = commands.add_parser("translate", help="translate arguments, a file or stdin")
    translate.add_argument("--model", required=True, help="SavedModel or run directory")
    translate.add_argument("--file", help="one sentence a line")
    translate.add_argument("--beam", action="store_true", help="beam search (the model's beam_search signature)")
    translate.add_argument("--n-best", type=int, default=1, help="with beam search: print the N best, with scores")
    translate.add_argument("--sample", action="store_true", help="draw translations instead of the best one")
    translate.add_argument("--temperature", type=float, default=1.0)
    translate.add_argument("--top-k", type=int, default=0, help="0: no top-k filter")
    translate.add_argument("--top-p", type=float, default=1.0, help="1: no nucleus filter")
    translate.add_argument("--seed", type=int, default=0)
    translate.add_argument(
        "--engine", default="auto", choices=["auto", "eager", "compiled"],
        help=f"eager: op by op, no compilation (the default up to {EAGER_SENTENCES} sentences, greedy or beam); "
        "compiled: the SavedModel's XLA functions (the default for more, and for --sample: eager sampling "
        "draws other tokens from the same seed)",
    )
    translate.add_argument("text", nargs="*")
    translate.set_defaults(function=command_translate)

    evaluate = commands.add_parser("evaluate", help="sacreBLEU and chrF on a pair file")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--data", required=True, help="Tatoeba-format pair file")
    evaluate.add_argument("--direction", default="other-en", choices=["other-en", "en-other"])
    evaluate.add_argument("--limit", type=int, default=0, help="first N pairs only")
    evaluate.add_argument("--beam", action="store_true", help="beam search instead of greedy")
    evaluate.add_argument("--output", help="directory for hypotheses.txt and scores.json")
    evaluate.set_defaults(function=command_evaluate)

    fetch = commands.add_parser(
        "fetch-corpus", help="get the default Tatoeba fr-en corpus (../shared if present, else from PyPI)"
    )
    fetch.set_defaults(function=command_fetch_corpus)

    plot = commands.add_parser("plot-attention", help="PNG of the cross-attention for one sentence")
    plot.add_argument("--model", required=True, help="training run directory")
    plot.add_argument("--output", default="attention.png")
    plot.add_argument("sentence")
    plot.set_defaults(function=command_plot_attention)
    return parser


def keep_xla_programs():
    """XLA's compiled programs persist between runs of the command (unless TF_XLA_FLAGS names
    another cache): a second `translate` skips the compilations of the first, about 5 of its
    seconds on 2 cores. In $KERAS_SEQ2SEQ_CACHE/xla (~/.cache/keras_seq2seq/xla), a file a
    program. Set by the command only (TensorFlow reads the flag at its first compilation), not
    by importing this module, nor for an eager `translate`: its XLA programs (the caches'
    update, Keras' `slice_update`, one per cache size) compile in 0.1-0.2 s more than they
    read back, and reading them logged TensorFlow's errors on the machine's CPU features."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" not in flags:
        cache = Path(os.environ.get("KERAS_SEQ2SEQ_CACHE", Path.home() / ".cache" / "keras_seq2seq")) / "xla"
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={cache}".strip()


def main(argv=None):
    """Runs a command; a bad input is answered with one line on stderr and exit status 2."""
    return _run_command(build_parser().parse_args(argv))


def _run_command(args):
    if args.command != "translate":  # (`translate` decides once it knows its engine)
        keep_xla_programs()
    try:
        args.function(args)
    except (InputError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        if args.debug:
            raise
        message = error.args[-1] if isinstance(error, OSError) and error.filename is None else str(error)
        print(f"keras-seq2seq {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    except (FloatingPointError, WorkerLost) as error:  # diverged, or lost a worker: a failure, not a bad input
        if args.debug:
            raise
        print(f"keras-seq2seq {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


# Commands that leave nothing behind them but closed files and their printed output.
QUICK_EXIT_COMMANDS = ("translate", "evaluate")


def run(argv=None):
    """The `keras-seq2seq` console script: `main`, then the process ends.

    After `translate` and `evaluate` (their outputs printed and their files closed), the
    process ends without Python's interpreter teardown (`os._exit`, after flushing stdout
    and stderr): unloading TensorFlow's modules took about 1 s of a one-sentence
    `translate`'s 6 (benchmarks/README.md); they load their model without garbage
    collection (`loading`). Other commands exit normally.
    """
    global _ENDS_PROCESS
    args = build_parser().parse_args(argv)
    _ENDS_PROCESS = args.command in QUICK_EXIT_COMMANDS
    status = _run_command(args)
    if args.command in QUICK_EXIT_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(run())
