"""Export a training run as a shipped model with its model card.

    .venv/bin/python training/ship_model.py runs/small-fr-en saved_models/fr-en-small \\
        --dev ../shared/data/tatoeba-fr-en/dev.txt --log runs/small-fr-en.log

Exports the best checkpoint, scores it on the whole dev file (greedy and beam 4, cased
detokenized sacreBLEU and chrF), and writes README.md (the model card) beside the
SavedModel, with the data attribution, the configuration, the training time and machine,
the scores and ten sample translations.
"""

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

from keras_seq2seq import cli

SAMPLES = [
    "Je suis étudiant.",
    "Il fait beau aujourd'hui.",
    "Où est la gare ?",
    "Je ne sais pas ce que tu veux dire.",
    "Nous avons mangé au restaurant hier soir.",
    "Elle lit un livre dans le jardin.",
    "Pourriez-vous m'aider, s'il vous plaît ?",
    "Le train part à huit heures.",
    "J'aimerais apprendre à jouer du piano.",
    "Tom a oublié ses clés à la maison.",
]


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def training_seconds(log_path):
    """Sum of the per-epoch times Keras printed (`768/768 - 1147s - ...`)."""
    if not log_path or not Path(log_path).exists():
        return None
    return sum(int(seconds) for seconds in re.findall(r"^\d+/\d+ - (\d+)s - ", Path(log_path).read_text(), re.M))


def _run(argv):
    """`keras-seq2seq ARGV`; stops this job with its status when the command fails."""
    status = cli.main(argv)
    if status:
        sys.exit(status)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("output")
    parser.add_argument("--dev", required=True)
    parser.add_argument("--log", help="the training log, for the training time")
    parser.add_argument("--checkpoint", default="best")
    args = parser.parse_args()
    run_dir, output = Path(args.run_dir), Path(args.output)

    _run(["export", str(run_dir), "--output", str(output), "--checkpoint", args.checkpoint])
    scores = {}
    for name, beam in (("greedy", []), ("beam4", ["--beam"])):
        scores[name] = cli.command_evaluate(
            cli.build_parser().parse_args(
                ["evaluate", "--model", str(output), "--data", args.dev, "--output", str(run_dir / f"dev-{name}"),
                 *beam]
            )
        )
    translate = cli.load_translate_fn(output)
    samples = list(zip(SAMPLES, translate(SAMPLES)))

    config = json.loads((run_dir / "config.json").read_text())
    model_config = json.loads((run_dir / "model_config.json").read_text())
    history = (run_dir / "logs" / "training.csv").read_text().splitlines()
    seconds = training_seconds(args.log)
    size_mb = sum(f.stat().st_size for f in output.rglob("*") if f.is_file()) / 1e6
    model_keys = ("num_layers", "d_model", "num_heads", "ff_dim", "dropout", "max_length",
                  "source_vocab_size", "target_vocab_size", "tie_embeddings", "normalize_first")
    card = f"""# {output.name}: French -> English, keras-seq2seq `{config['model']['preset']}` preset

A Transformer encoder-decoder trained with keras-seq2seq, exported as a SavedModel that takes
French strings and returns English strings (SentencePiece tokenizers inside).

    .venv/bin/keras-seq2seq translate --model {output} "Je suis étudiant."

## Data and license

Trained on `tatoeba-fr-en/train.txt` (167,346 pairs) and selected on `dev.txt` (5,303 pairs)
of the Tatoeba French-English sentence pairs packaged by manythings.org/anki (release
2020-08-23). License: **CC-BY 2.0 (France)**. Attribution: tatoeba.org and
www.manythings.org/anki. This model is a work derived from that data and carries the same
attribution.

## Scores on dev.txt ({scores['greedy']['sentences']} pairs, detokenized, cased)

| decoding | sacreBLEU | chrF |
|---|---|---|
| greedy | {scores['greedy']['bleu']} | {scores['greedy']['chrf']} |
| beam 4, length penalty 0.6 | {scores['beam4']['bleu']} | {scores['beam4']['chrf']} |

Signatures: `{scores['greedy']['bleu_signature']}`, `{scores['greedy']['chrf_signature']}`.

## Samples (greedy)

| French | English (this model) |
|---|---|
""" + "".join(f"| {source} | {target} |\n" for source, target in samples) + f"""
## Model

{', '.join(f'{key} {model_config[key]}' for key in model_keys if key in model_config)};
{sum(1 for _ in history) - 1} epochs logged; checkpoint `{args.checkpoint}` (lowest dev loss).
SavedModel size {size_mb:.1f} MB.

## Training

- Machine: {cpu_name()}, {os.cpu_count()} cores, no GPU; TensorFlow 2.21, Keras 3.
- Training time: {f'{seconds / 3600:.2f} h' if seconds else 'see the log'} (sum of epoch times).
- Configuration (`config.json` in `assets.extra/`):

```json
{json.dumps(config, indent=2)}
```

## What would raise the score

More epochs (the dev loss was still falling when this run stopped), a larger model (`base`)
or a shared vocabulary with tied embeddings, averaging the last checkpoints, and tuning the
beam size and length penalty on dev.
"""
    (output / "README.md").write_text(card, encoding="utf-8")
    print(f"model card: {output / 'README.md'}")


if __name__ == "__main__":
    main()
