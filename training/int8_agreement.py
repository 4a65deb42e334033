"""Pick dev sentences where the float model's choices are clear, and pin what the int8 export says.

    .venv/bin/python training/int8_agreement.py saved_models/fr-en-small saved_models/fr-en-small-int8 \\
        --dev ../shared/data/tatoeba-fr-en/dev.txt --output tests/fixtures/int8-agreement.json

From the first `--scan` dev sentences, keeps the first `--count` whose greedy translation by the
float model chose every token by a margin of at least `--margin` (log-probability of the chosen
token minus that of the runner-up, teacher-forced on that translation): int8 rounding moves the
logits by about a tenth, so on these the int8 model should say the same. Writes the sources, the
float translations and how many the int8 export translates identically; tests/test_golden.py
checks both exports against it.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_seq2seq.data.tokenizers import START_ID
from keras_seq2seq.runs import load_run
from keras_seq2seq.serving.saved_model import load_saved_model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("float_model")
    parser.add_argument("int8_model")
    parser.add_argument("--dev", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--scan", type=int, default=400)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--margin", type=float, default=1.0)
    args = parser.parse_args()

    sources = [line.split("\t")[1] for line in Path(args.dev).read_text(encoding="utf-8").splitlines()[: args.scan]]
    model, _, _ = load_run(args.float_model)
    exported = load_saved_model(args.float_model)
    tokenize = exported.signatures["tokenize_source"]
    greedy = exported.signatures["serving_default"]
    target_tokenizer = load_run(args.float_model)[2]
    kept = []
    for start in range(0, len(sources), 50):
        batch = sources[start : start + 50]
        translations = [t.decode() for t in greedy(text=tf.constant(batch))["translation"].numpy()]
        source_ids = tokenize(text=tf.constant(batch))["token_ids"].numpy()
        for i, translation in enumerate(translations):
            target = [int(t) for t in target_tokenizer.tokenize(translation)]
            if not target:
                continue
            logits = np.asarray(model((source_ids[i : i + 1], np.array([[START_ID] + target[:-1]], "int32"))))[0]
            ranked = np.sort(logits, axis=-1)
            chosen = logits[np.arange(len(target)), target]
            if np.all(chosen >= ranked[:, -1]) and np.min(ranked[:, -1] - ranked[:, -2]) >= args.margin:
                kept.append((batch[i], translation))
        if len(kept) >= args.count:
            break
    kept = kept[: args.count]
    int8 = load_saved_model(args.int8_model).signatures["serving_default"]
    int8_translations = [t.decode() for t in int8(text=tf.constant([s for s, _ in kept]))["translation"].numpy()]
    agree = sum(a == b for (_, a), b in zip(kept, int8_translations))
    Path(args.output).write_text(json.dumps({
        "margin": args.margin,
        "sources": [s for s, _ in kept],
        "float": [t for _, t in kept],
        "int8_agreeing": agree,
        "int8_differing": {s: t for (s, f), t in zip(kept, int8_translations) if f != t},
    }, indent=1, ensure_ascii=False))
    print(f"{len(kept)} sentences with margins >= {args.margin}; the int8 export agrees on {agree}")


if __name__ == "__main__":
    main()
