"""The README's main job: corpus -> tokenizers -> training -> dev evaluation -> export -> translation.

Run through `python3 dev.py main`. Takes 11 to 19 minutes on 2 CPU cores, by the host (plus the
one-time set-up and corpus download); every step says where its output went.
"""

import sys
from pathlib import Path

from keras_seq2seq import cli

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / "runs" / "demo-fr-en"
DEMO_MODEL = ROOT / "saved_models" / "demo-fr-en"
SHIPPED_MODEL = ROOT / "saved_models" / "fr-en-small"
SENTENCES = ["Je suis étudiant.", "Il fait beau aujourd'hui.", "Où est la gare ?"]


def step(title):
    print(f"\n=== {title} ===", flush=True)


def _run(argv):
    """`keras-seq2seq ARGV`; stops this job with its status when the command fails."""
    status = cli.main(argv)
    if status:
        sys.exit(status)


def main():
    from keras_seq2seq.data.fetch import default_corpus_files

    step("1/5 corpus (keras-seq2seq fetch-corpus)")
    _run(["fetch-corpus"])
    files = default_corpus_files()

    step("2/5 training a short demo run (training/configs/demo-fr-en.yaml)")
    _run(["train", "--config", str(ROOT / "training/configs/demo-fr-en.yaml"), "--output", str(RUN_DIR)])

    step("3/5 exporting the demo run to a string-in, string-out SavedModel")
    _run(["export", str(RUN_DIR), "--output", str(DEMO_MODEL), "--checkpoint", "last"])

    step("4/5 evaluating on the first 500 dev pairs")
    _run(["evaluate", "--model", str(DEMO_MODEL), "--data", str(files["dev"]), "--limit", "500",
          "--output", str(RUN_DIR / "evaluation")])

    step("5/5 translating")
    models = [DEMO_MODEL] + ([SHIPPED_MODEL] if (SHIPPED_MODEL / "saved_model.pb").exists() else [])
    for model in models:
        translate = cli.load_translate_fn(model)
        print(f"\n{model.relative_to(ROOT)}:")
        for source, target in zip(SENTENCES, translate(SENTENCES)):
            print(f"  {source}  ->  {target}")
    print(
        "\nNext: translate with\n"
        "      .venv/bin/keras-seq2seq translate --model saved_models/fr-en-small \"Je suis étudiant.\"\n"
        "      serve it with TensorFlow Serving: README.md, section \"Translating, evaluating, serving\"."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
