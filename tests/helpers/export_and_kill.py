"""`keras-seq2seq ARGS`, SIGKILLed at a chosen point of an export when KILL_AT is set:

KILL_AT=saved: right after the SavedModel is written (into the staging directory), before assets.extra.
KILL_AT=rename: between moving the previous export aside and renaming the new one into place.
"""

import os
import signal
import sys

import tensorflow as tf

from keras_seq2seq import atomic, cli

kill_at = os.environ.get("KILL_AT")


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


if kill_at == "saved":
    save = tf.saved_model.save

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        kill()

    tf.saved_model.save = save_then_die
elif kill_at == "rename":
    rename = atomic.os.rename
    renames = []

    def rename_once_then_die(source, destination):
        if renames:
            kill()
        renames.append(source)
        rename(source, destination)

    atomic.os.rename = rename_once_then_die

sys.exit(cli.main(sys.argv[1:]))
