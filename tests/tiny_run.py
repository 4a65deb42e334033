"""The tiny trained run that the training, decoding and export tests share.

    python -m tests.tiny_run DIR    # trains it into DIR/run, then writes DIR/history.json

Under pytest-xdist the controller starts this in the background as the session
begins (see conftest.py), so no worker waits idle for it; without xdist the
`tiny_run` fixture trains it in-process.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OVERRIDES = [
    "corpus.limit=64",
    "tokenizer.source_vocab_size=200",
    "tokenizer.target_vocab_size=200",
    "model.preset=tiny",
    "training.token_budget=512",
    "training.max_length=32",
    "training.epochs=60",
    "training.warmup_steps=60",
    "training.lr_scale=0.5",
    "training.label_smoothing=0.0",
    "training.early_stopping_patience=0",
    "training.backup_every_steps=0",
    "training.select_by=bleu",
    "training.dev_bleu_every=20",
    "training.dev_bleu_sentences=64",
    "training.verbose=0",
]


def train(run_dir):
    """Trains the tiny model (memorising 64 fixture pairs) into `run_dir`; returns the Keras History."""
    import keras

    from keras_seq2seq import trainer
    from keras_seq2seq.run_config import load_config

    keras.utils.set_random_seed(0)
    sample = str(FIXTURES / "tatoeba-sample.txt")
    config = load_config(None, [f"corpus.train={sample}", f"corpus.dev={sample}", *OVERRIDES])
    history = trainer.train(config, run_dir)
    keras.mixed_precision.set_global_policy("float32")
    return history


def wait_for(shared, timeout=1200):
    """`(run_dir, history)` of the background training into `shared`, once it has finished."""
    from types import SimpleNamespace

    deadline = time.time() + timeout
    while time.time() < deadline:
        if (shared / "history.json").exists():
            return shared / "run", SimpleNamespace(history=json.loads((shared / "history.json").read_text()))
        if (shared / "failed.txt").exists():
            raise RuntimeError(f"the tiny run's training failed:\n{(shared / 'failed.txt').read_text()[-3000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"the tiny run's training did not finish in {timeout} s (log: {shared / 'training.log'})")


def main(shared):
    shared = Path(shared)
    try:
        history = train(shared / "run")
        written = shared / "history.json.partial"
        written.write_text(json.dumps(history.history, default=float))
        written.rename(shared / "history.json")  # atomic: readers see all of it or nothing
    except BaseException:
        (shared / "failed.txt").write_text(traceback.format_exc())
        raise


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    main(sys.argv[1])
