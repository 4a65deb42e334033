"""`keras-seq2seq ARGS`, with two test hooks set by environment variables.

KILL_AFTER_EPOCH=K: SIGKILL this process right after epoch K's row is written to training.csv
    (before anything else of that epoch's end runs: the checkpoints, the backup).
KILL_AT_STEP=N: SIGKILL this process when training step N (counted over the run, from 0) begins.
RECORD_RESTORED=PATH: after the backup is restored at the start of training, write the model's
    weights and the optimizer's step counter to PATH (.npz).
NAN_AT_STEP=N: the loss the callbacks see at global step N is NaN; just before that step, the
    files under checkpoints/ and backup/ are listed with their SHA-256 in NAN_SNAPSHOT (JSON).
"""

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import keras
import numpy as np

from keras_seq2seq import cli, trainer

kill_after = int(os.environ.get("KILL_AFTER_EPOCH", "-1"))
record = os.environ.get("RECORD_RESTORED")
write_row = keras.callbacks.CSVLogger.on_epoch_end
restore = trainer.EpochAndStepBackup.on_train_begin


def on_epoch_end(self, epoch, logs=None):
    write_row(self, epoch, logs)
    if epoch == kill_after:
        self.csv_file.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def on_train_begin(self, logs=None):
    restore(self, logs)
    if record:
        weights = {f"w{index}": np.asarray(weight) for index, weight in enumerate(self.model.weights)}
        np.savez(record, iterations=int(self.model.optimizer.iterations.numpy()), **weights)


nan_at = int(os.environ.get("NAN_AT_STEP", "-1"))
kill_at = int(os.environ.get("KILL_AT_STEP", "-1"))


class KillAtStep(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def saved_state(run_dir):
    """{path under run_dir: SHA-256} of every file in checkpoints/ and backup/."""
    files = sorted(p for name in ("checkpoints", "backup") for p in (run_dir / name).rglob("*") if p.is_file())
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


class InjectNaN(keras.callbacks.Callback):
    """First among the callbacks: snapshots the run's saved state, then makes step `nan_at`'s loss NaN."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir, self.step = Path(run_dir), 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.step == nan_at:
            snapshot = saved_state(self.run_dir)
            Path(os.environ["NAN_SNAPSHOT"]).write_text(json.dumps(snapshot))

    def on_train_batch_end(self, batch, logs=None):
        if self.step == nan_at and logs is not None:
            logs["loss"] = float("nan")
        self.step += 1


fit = keras.Model.fit


def fit_with_hooks(self, *args, callbacks=None, **kwargs):
    run_dir = Path(sys.argv[sys.argv.index("--output") + 1])
    hooks = ([InjectNaN(run_dir)] if nan_at >= 0 else []) + ([KillAtStep()] if kill_at >= 0 else [])
    return fit(self, *args, callbacks=[*hooks, *(callbacks or [])], **kwargs)


if __name__ == "__main__":
    keras.callbacks.CSVLogger.on_epoch_end = on_epoch_end
    trainer.EpochAndStepBackup.on_train_begin = on_train_begin
    if nan_at >= 0 or kill_at >= 0:
        keras.Model.fit = fit_with_hooks
    sys.exit(cli.main(sys.argv[1:]))
