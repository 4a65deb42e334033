"""Export a training run as a shipped model with its model card.

    .venv/bin/python training/ship_model.py runs/small-fr-en saved_models/fr-en-small \\
        --dev ../shared/data/tatoeba-fr-en/dev.txt --log runs/small-fr-en.log \\
        --config training/configs/small-fr-en.yaml --average 5

Averages the run's last N epoch checkpoints (`--average`; else exports `--checkpoint`),
exports it, scores it on the whole dev file (greedy and beam 4, cased detokenized sacreBLEU
and chrF), and writes README.md (the model card) beside the SavedModel: the data
attribution, the commands that reproduce it, the scores, the training curves and a
cross-attention plot, the table of runs (`training/runs.json`), samples, the
configuration, and the limitations with examples.
"""

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

from keras_seq2seq import cli

# Outside the training data's domain of short everyday sentences: a long sentence,
# technical text, a headline.
LIMITATION_SAMPLES = [
    "Lorsque nous sommes arrivés à la gare, le train était déjà parti, alors nous avons décidé de "
    "prendre un taxi pour rejoindre nos amis qui nous attendaient depuis une heure au restaurant.",
    "La fonction renvoie une exception lorsque le tampon mémoire dépasse la taille maximale autorisée.",
    "Grève à la SNCF : trafic perturbé jeudi sur les lignes TER et Intercités.",
]
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


def score(model, dev, prefix):
    """`{"greedy": scores, "beam4": scores}` of `keras-seq2seq evaluate` on the whole dev file."""
    scores = {}
    for name, beam in (("greedy", []), ("beam4", ["--beam"])):
        scores[name] = cli.command_evaluate(
            cli.build_parser().parse_args(
                ["evaluate", "--model", str(model), "--data", dev, "--output", f"{prefix}-{name}", *beam]
            )
        )
    return scores


def size_mb(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("output")
    parser.add_argument("--dev", required=True)
    parser.add_argument("--log", help="the training log, for the training time")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--average", type=int, default=0, help="average the last N epoch checkpoints, ship that")
    parser.add_argument("--config", help="the YAML config the run was trained with (for the card's commands)")
    parser.add_argument("--runs", default=str(Path(__file__).resolve().parent / "runs.json"),
                        help="JSON list of the runs made for this model (the card's table)")
    parser.add_argument("--int8", help="also export the int8 model here (export --quantize int8), scored the same")
    parser.add_argument("--leg", nargs=2, action="append", metavar=("CONFIG", "STEPS"), default=[],
                        help="a run this one continued (training.init_from), in order, with the step at which "
                             "the next leg starts (training.initial_step); repeat for each earlier leg")
    parser.add_argument("--length-penalty", type=float, default=0.6, help="export --length-penalty (beam search)")
    parser.add_argument("--note", default="", help="a paragraph for the card's 'How it was made'")
    parser.add_argument("--sweep", help="training/decode_sweep.py's JSON (--output) for this run's checkpoints: "
                                        "drawn in the card as dev BLEU by checkpoint (checkpoints.png)")
    parser.add_argument("--earlier-hours", type=float, default=0.0,
                        help="training hours of the legs before this run (--leg), for the card's total")
    parser.add_argument("--record", nargs=3, metavar=("NAME", "CONFIGURATION", "HOURS"),
                        help="add this run, with the scores measured here, to --runs (the card's table)")
    args = parser.parse_args()
    run_dir, output = Path(args.run_dir), Path(args.output)

    checkpoint = args.checkpoint
    if args.average:
        _run(["average", str(run_dir), "--last", str(args.average)])
        checkpoint = "averaged"
    decoding = ["--length-penalty", str(args.length_penalty)]
    _run(["export", str(run_dir), "--output", str(output), "--checkpoint", checkpoint, *decoding])
    scores = score(output, args.dev, run_dir / "dev")
    int8_scores = None
    if args.int8:
        _run(["export", str(run_dir), "--output", args.int8, "--checkpoint", checkpoint, "--quantize", "int8",
              *decoding])
        int8_scores = score(args.int8, args.dev, run_dir / "dev-int8")
    translate = cli.load_translate_fn(output)
    samples = list(zip(SAMPLES, translate(SAMPLES)))
    limitations = list(zip(LIMITATION_SAMPLES, translate(LIMITATION_SAMPLES)))

    from keras_seq2seq.runs import load_run
    from keras_seq2seq.trainer import plot_curves
    from keras_seq2seq.visualize import plot_cross_attention

    plot_curves(run_dir / "logs" / "training.csv", output / "curves.png")
    plot_cross_attention(*load_run(output), SAMPLES[9], output / "attention.png")
    sweep_figure = ""
    sweep = json.loads(Path(args.sweep).read_text()) if args.sweep else None
    if sweep:
        from decode_sweep import plot_sweep  # training/, this script's folder

        plot_sweep(sweep, output / "checkpoints.png",
                   f"dev BLEU ({Path(args.dev).name}, whole) by checkpoint of the last leg")
        sweep_figure = ("\n![Dev BLEU of each checkpoint of the last leg, and of the shipped mean]"
                        "(checkpoints.png)\n")
    runs = json.loads(Path(args.runs).read_text()) if Path(args.runs).is_file() else []
    if args.record:
        name, configuration, hours = args.record
        runs.append({
            "name": name, "configuration": configuration, "epochs": sum(1 for _ in (run_dir / "logs" / "training.csv")
                                                                        .read_text().splitlines()[1:]),
            "hours": float(hours), "host": f"{cpu_name()}, {os.cpu_count()} cores",
            "bleu_greedy": scores["greedy"]["bleu"], "bleu_beam4": scores["beam4"]["bleu"],
            "chrf_beam4": scores["beam4"]["chrf"],
        })
        Path(args.runs).write_text(json.dumps(runs, indent=2) + "\n")

    config = json.loads((run_dir / "config.json").read_text())
    model_config = json.loads((run_dir / "model_config.json").read_text())
    history = (run_dir / "logs" / "training.csv").read_text().splitlines()
    seconds = training_seconds(args.log)
    model_keys = ("num_layers", "d_model", "num_heads", "ff_dim", "dropout", "max_length",
                  "source_vocab_size", "target_vocab_size", "tie_embeddings", "normalize_first")
    steps_per_epoch = config["training"].get("steps_per_epoch") or 0
    epochs_logged = f"{sum(1 for _ in history) - 1} epochs"
    epochs_logged += f" of {steps_per_epoch} steps" if steps_per_epoch else ""
    epochs_logged += " logged" + (" in the last leg" if args.leg else "")
    hours = f"{seconds / 3600:.2f} h" if seconds else "see the log"
    if seconds and args.leg:
        hours += " for the last leg"
        if args.earlier_hours:
            hours += f", {seconds / 3600 + args.earlier_hours:.2f} h with the legs before it"
    if args.average:
        selected = f"the mean of the last {args.average} epoch checkpoints"
    else:
        selected = f"checkpoint `{checkpoint}`"
    config_file = args.config or "training/configs/CONFIG.yaml"
    selection = f"--average {args.average}" if args.average else f"--checkpoint {checkpoint}"
    selection += f" --length-penalty {args.length_penalty}"
    if args.int8:
        selection += f" --int8 saved_models/{Path(args.int8).name}"
    name = output.name
    train = f".venv/bin/keras-seq2seq train --config {config_file} --output runs/{name} > runs/{name}.log"
    if args.leg:
        commands, previous = [], None
        for index, (leg_config, _) in enumerate(args.leg):
            leg = f"runs/{name}-leg{index + 1}"
            after = "" if previous is None else (
                f" \\\n        training.init_from={previous[0]} training.initial_step={previous[1]}")
            commands.append(f".venv/bin/keras-seq2seq train --config {leg_config} --output {leg}{after} > {leg}.log")
            previous = (leg, args.leg[index][1])
        commands.append(f".venv/bin/keras-seq2seq train --config {config_file} --output runs/{name} \\\n"
                        f"        training.init_from={previous[0]} training.initial_step={previous[1]} "
                        f"> runs/{name}.log")
        train = "\n    ".join(commands)
    if sweep:  # the sweep the card draws, made before shipping (of the mean, when one ships)
        names = " ".join(dict.fromkeys(row["checkpoint"] for row in sweep))
        beams = " ".join(str(beam) for beam in dict.fromkeys(row["beam"] for row in sweep))
        penalties = " ".join(dict.fromkeys(str(row["length_penalty"]) for row in sweep if row["beam"] > 1))
        penalties = penalties or str(args.length_penalty)
        if args.average:
            train += f"\n    .venv/bin/keras-seq2seq average runs/{name} --last {args.average}"
        train += (f"\n    .venv/bin/python training/decode_sweep.py runs/{name} --dev DEV.txt \\\n"
                  f"        --checkpoints {names} --beams {beams} --length-penalties {penalties} "
                  f"--output runs/{name}/sweep.json")
        selection += f" --sweep runs/{name}/sweep.json"
    if args.earlier_hours:
        selection += f" --earlier-hours {args.earlier_hours}"
    int8_rows = ""
    if int8_scores:
        int8_rows = (f"| int8 export (`{Path(args.int8).name}`, {size_mb(args.int8):.1f} MB), greedy | "
                     f"{int8_scores['greedy']['bleu']} | {int8_scores['greedy']['chrf']} |\n"
                     f"| int8 export, beam 4 | {int8_scores['beam4']['bleu']} | {int8_scores['beam4']['chrf']} |\n")
    rows = "".join(
        f"| {run['name']} | {run['configuration']} | {run['epochs']} | {run['hours']} | {run['host']} | "
        f"{run['bleu_greedy']} | {run['bleu_beam4']} | {run['chrf_beam4']} |\n"
        for run in runs
    )
    sample_rows = "".join(f"| {source} | {target} |\n" for source, target in samples)
    limitation_rows = "".join(f"| {source} | {target} |\n" for source, target in limitations)
    card = f"""# {output.name}: French -> English, keras-seq2seq `{config['model']['preset']}` preset

A Transformer encoder-decoder trained with keras-seq2seq, exported as a SavedModel that takes
French strings and returns English strings (SentencePiece tokenizers inside).

    keras-seq2seq translate --model {output} "Je suis étudiant."

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
| beam 4, length penalty {args.length_penalty} | {scores['beam4']['bleu']} | {scores['beam4']['chrf']} |
{int8_rows}
Signatures: `{scores['greedy']['bleu_signature']}`, `{scores['greedy']['chrf_signature']}`.

## How it was made

From a clean checkout (`python3 dev.py test` sets up `.venv`; DEV.txt is the corpus's
`dev.txt`: `../shared/data/tatoeba-fr-en/dev.txt`, or the fetched copy, see the README):

    {train}
    .venv/bin/python training/ship_model.py runs/{name} saved_models/{name} --dev DEV.txt \\
        --log runs/{name}.log --config {config_file} {selection}

A stopped training resumes from its backup when its command is started again. {args.note}

![Training curves: loss, accuracy and dev BLEU by epoch](curves.png)
{sweep_figure}
![Cross-attention of the last decoder block](attention.png)

## Runs

Every run made for this model, scored on the whole `dev.txt` (chrF with beam 4):

| run | configuration | epochs | hours | host | BLEU greedy | BLEU beam 4 | chrF beam 4 |
|---|---|---|---|---|---|---|---|
{rows}
## Samples (greedy)

| French | English (this model) |
|---|---|
{sample_rows}
## Limitations

Trained on Tatoeba only: short everyday sentences. Long sentences, technical vocabulary and
headlines are outside its domain; it may drop clauses, translate word for word, or repeat
itself on them:

| French | English (this model, greedy) |
|---|---|
{limitation_rows}
Sources longer than {model_config.get('max_length')} tokens are truncated; an empty or blank
source gives an empty translation.

## Model

{', '.join(f'{key} {model_config[key]}' for key in model_keys if key in model_config)};
{epochs_logged}; shipped: {selected}. SavedModel size {size_mb(output):.1f} MB.

## Training

- Machine{" (last leg)" if args.leg else ""}: {cpu_name()}, {os.cpu_count()} cores, no GPU; TensorFlow 2.21, Keras 3.
- Training time: {hours} (sums of epoch times).
- Configuration (`config.json` in `assets.extra/`):

```json
{json.dumps(config, indent=2)}
```
"""
    (output / "README.md").write_text(card, encoding="utf-8")
    print(f"model card: {output / 'README.md'}")
    if args.int8:
        int8 = Path(args.int8)
        score_rows = "".join(
            f"| {label} | {int8_scores[key]['bleu']} | {int8_scores[key]['chrf']} | {scores[key]['bleu']} | "
            f"{scores[key]['chrf']} |\n"
            for key, label in (("greedy", "greedy"), ("beam4", "beam 4"))
        )
        (int8 / "README.md").write_text(f"""# {int8.name}: {output.name} with int8 weights

The model of `../{output.name}` (its card has the training, the runs and the limitations),
exported with `keras-seq2seq export RUN --quantize int8`: every matrix stored as int8 with one
float scale per output unit (Keras 3's weight-only int8 quantization), dequantized once per
process (by its first call); the same signatures, strings in and strings out. {size_mb(int8):.1f} MB against
{size_mb(output):.1f} MB.

    keras-seq2seq translate --model {int8} "Je suis étudiant."

## Data and license

Trained on the Tatoeba French-English sentence pairs packaged by manythings.org/anki (release
2020-08-23). License: **CC-BY 2.0 (France)**. Attribution: tatoeba.org and
www.manythings.org/anki. This model is a work derived from that data and carries the same
attribution.

## Scores on dev.txt ({int8_scores['greedy']['sentences']} pairs, detokenized, cased)

| decoding | int8: sacreBLEU | chrF | float ({output.name}): sacreBLEU | chrF |
|---|---|---|---|---|
{score_rows}""", encoding="utf-8")
        print(f"model card: {int8 / 'README.md'}")


if __name__ == "__main__":
    main()
