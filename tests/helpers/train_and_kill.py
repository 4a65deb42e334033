"""`keras-seq2seq ARGS`, with two test hooks set by environment variables.

KILL_AFTER_EPOCH=K: SIGKILL this process right after epoch K's row is written to training.csv
    (before anything else of that epoch's end runs: the checkpoints, the backup).
RECORD_RESTORED=PATH: after the backup is restored at the start of training, write the model's
    weights and the optimizer's step counter to PATH (.npz).
"""

import os
import signal
import sys

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


keras.callbacks.CSVLogger.on_epoch_end = on_epoch_end
trainer.EpochAndStepBackup.on_train_begin = on_train_begin
sys.exit(cli.main(sys.argv[1:]))
