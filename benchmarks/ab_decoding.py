"""Before/after decoding speed of two exports of the same weights, timed in one process.

    # with the old code on the path, then with the new one:
    PYTHONPATH=/old/tree python benchmarks/ab_decoding.py export --length 16 --output /tmp/ab/old-16
    python benchmarks/ab_decoding.py export --length 16 --output /tmp/ab/new-16
    python benchmarks/ab_decoding.py compare /tmp/ab/old-16 /tmp/ab/new-16 --rounds 6

`export` writes the shipped model's weights as a SavedModel whose outputs are forced to
`--length` tokens ([END] suppressed), as `decoding.py` does for the engine `ours`.
`compare` loads both SavedModels into one process and alternates blocks of calls between
them (greedy and beam 4; one sentence and the 64 dev sentences of `decoding.py`), so both
are measured in the same seconds; it prints each one's median and the ratio new / old.
A refactoring of the decoding path should leave every ratio near 1.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "saved_models" / "fr-en-small"


def export(length, output, quantize=None):
    """The shipped weights exported by the keras_seq2seq on the path, forced to `length` tokens."""
    try:  # the layout after the serving/ package was introduced
        from keras_seq2seq.serving import Translator, export_translator, load_run
    except ImportError:
        from keras_seq2seq import Translator, export_translator, load_run

    options = {"quantize": quantize} if quantize else {}  # older trees have no int8
    translator = Translator(*load_run(SHIPPED), force_output_length=length, **options)
    export_translator(translator, output)


def compare(old, new, rounds, sentences, cases=None):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = {"old": tf.saved_model.load(str(old)), "new": tf.saved_model.load(str(new))}
    rows = []
    for search, signature in (("greedy", "serving_default"), ("beam4", "beam_search")):
        for batch in (1, 64):
            if cases and f"{search}:{batch}" not in cases:
                continue
            text = tf.constant(sentences[:batch])
            calls = {
                name: (lambda model=model, s=signature, t=text: model.signatures[s](text=t)["translation"].numpy())
                for name, model in loaded.items()
            }
            for call in calls.values():
                call(), call()  # compile and warm up
            times = {name: [] for name in calls}
            repeats = 8 if batch == 1 else 2
            for round_index in range(rounds):
                for name in ("old", "new") if round_index % 2 == 0 else ("new", "old"):
                    for _ in range(repeats):
                        started = time.perf_counter()
                        calls[name]()
                        times[name].append(time.perf_counter() - started)
            medians = {name: statistics.median(values) for name, values in times.items()}
            rows.append({"search": search, "batch": batch, **{f"{k}_ms": 1000 * v for k, v in medians.items()},
                         "new_over_old": medians["new"] / medians["old"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export")
    exporting.add_argument("--length", type=int, required=True)
    exporting.add_argument("--output", required=True)
    exporting.add_argument("--quantize", choices=["int8"])
    comparing = commands.add_parser("compare")
    comparing.add_argument("old")
    comparing.add_argument("new")
    comparing.add_argument("--rounds", type=int, default=6)
    comparing.add_argument("--cases", nargs="*", help="only these, e.g. greedy:64 beam4:1")
    args = parser.parse_args(argv)
    if args.command == "export":
        return export(args.length, args.output, args.quantize)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from decoding import dev_sources

    rows = compare(args.old, args.new, args.rounds, dev_sources(), args.cases)
    print("\n| search | batch | old ms | new ms | new / old |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['search']} | {row['batch']} | {row['old_ms']:.1f} | {row['new_ms']:.1f} | "
              f"{row['new_over_old']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
