"""Score checkpoints and decoding settings on a dev file: which checkpoint, beam size and length penalty to ship.

    .venv/bin/python training/decode_sweep.py runs/fr-en-small --dev DEV.txt \\
        --checkpoints epoch-001 epoch-002 averaged --beams 1 4 --length-penalties 0.6 1.0

Every checkpoint (a name under the run's checkpoints/, a `.weights.h5` file, or `export`
for a SavedModel given as the run) is decoded with each setting through the `Translator`
(as an export decodes), on the whole dev file in batches of 64, and scored as
`keras-seq2seq evaluate` scores (cased detokenized sacreBLEU and chrF). Prints a Markdown
table and writes it as JSON with `--output`; `--plot PNG` draws dev BLEU by checkpoint, one
line per decoding setting (`training/ship_model.py --sweep` puts it in a model card).
"""

import argparse
import json
import sys
from pathlib import Path

import sacrebleu
import tensorflow as tf

from keras_seq2seq import Translator, load_run
from keras_seq2seq.cli import translate_all
from keras_seq2seq.data.corpora import read_tatoeba


def score(model, tokenizers, sources, references, beam, length_penalty):
    translator = Translator(model, *tokenizers, beam_size=max(beam, 1), length_penalty=length_penalty)
    signature = translator.translate if beam == 1 else translator.translate_beam
    hypotheses = translate_all(
        lambda batch: [t.decode("utf-8") for t in signature(tf.constant(batch))["translation"].numpy()], sources
    )
    bleu = sacrebleu.metrics.BLEU().corpus_score(hypotheses, [references]).score
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, [references]).score
    return round(bleu, 2), round(chrf, 2)


def plot_sweep(rows, png_path, title="dev BLEU by checkpoint"):
    """PNG of sacreBLEU by checkpoint (x: the checkpoints in the order scored), one line per
    decoding setting, from `rows` as `--output` writes them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = list(dict.fromkeys(row["checkpoint"] for row in rows))
    settings = list(dict.fromkeys((row["beam"], row["length_penalty"]) for row in rows))
    figure, axis = plt.subplots(figsize=(max(5, 1.1 * len(checkpoints)), 4))
    for beam, penalty in settings:
        points = [(checkpoints.index(row["checkpoint"]), row["bleu"]) for row in rows
                  if (row["beam"], row["length_penalty"]) == (beam, penalty)]
        label = "greedy" if beam == 1 else f"beam {beam}, length penalty {penalty}"
        axis.plot(*zip(*points), marker="o", label=label)
    axis.set_xticks(range(len(checkpoints)), checkpoints, rotation=30, ha="right")
    axis.set_ylabel("sacreBLEU")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run directory, or a SavedModel exported by keras-seq2seq")
    parser.add_argument("--dev", required=True, help="Tatoeba-format pair file (English<TAB>French)")
    parser.add_argument("--checkpoints", nargs="+", default=["best"])
    parser.add_argument("--beams", nargs="+", type=int, default=[1, 4], help="1: greedy")
    parser.add_argument("--length-penalties", nargs="+", type=float, default=[0.6])
    parser.add_argument("--limit", type=int, default=0, help="first N pairs only")
    parser.add_argument("--output", help="write the rows as JSON here")
    parser.add_argument("--plot", help="draw dev BLEU by checkpoint here (PNG)")
    args = parser.parse_args()

    pairs, report = read_tatoeba(args.dev)
    print(report.summary(), file=sys.stderr)
    pairs = pairs[: args.limit] if args.limit else pairs
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    rows = []
    print("| checkpoint | beam | length penalty | BLEU | chrF |\n|---|---|---|---|---|")
    for checkpoint in args.checkpoints:
        model, *tokenizers = load_run(args.run, checkpoint)
        for beam in args.beams:
            for penalty in args.length_penalties if beam > 1 else [0.0]:
                bleu, chrf = score(model, tokenizers, sources, references, beam, penalty)
                rows.append({"checkpoint": checkpoint, "beam": beam, "length_penalty": penalty,
                             "bleu": bleu, "chrf": chrf, "sentences": len(sources)})
                print(f"| {checkpoint} | {beam} | {penalty if beam > 1 else '-'} | {bleu} | {chrf} |", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2))
    if args.plot:
        plot_sweep(rows, args.plot)


if __name__ == "__main__":
    main()
