"""Checkpoint averaging: the mean of a run's last epoch checkpoints, as one checkpoint.

Averaging the weights of the last few epochs (Vaswani et al. 2017, section 6.1; OpenNMT-tf,
Marian and fairseq all offer it) smooths the noise of the last updates and usually scores
higher than any single checkpoint.
"""

import os
from pathlib import Path

import numpy as np

from keras_seq2seq.errors import InputError
from keras_seq2seq.runs import RunDirectory


def average_weights(model, checkpoints, load=None):
    """Sets `model`'s weights to the mean of `checkpoints` (weights files of that model); returns `model`.

    Each weight is summed in float64 and stored back in its own dtype (float32 for a
    model built by `RunDirectory.build_model`, whatever the training precision), so the
    mean of identical checkpoints is that checkpoint, bit for bit. Weights that are not
    floating point must be equal in every checkpoint. `load(path)` loads a checkpoint into
    `model` (default: `model.load_weights`).
    """
    load = load or (lambda path: model.load_weights(str(path)))
    if not checkpoints:
        raise InputError("no checkpoint to average")
    totals = None
    for path in checkpoints:
        load(path)
        values = model.get_weights()
        if totals is None:
            totals, first = [np.zeros(value.shape, np.float64) for value in values], values
        for total, value, reference in zip(totals, values, first):
            if np.issubdtype(value.dtype, np.floating):
                total += value
            elif not np.array_equal(value, reference):
                raise InputError(f"{path}: a non-float weight differs between the checkpoints averaged")
    model.set_weights(
        [
            (total / len(checkpoints)).astype(value.dtype) if np.issubdtype(value.dtype, np.floating) else value
            for total, value in zip(totals, first)
        ]
    )
    return model


def average_run(run_dir, last=None, checkpoints=None, output=None):
    """Writes the mean of a run's `last` N epoch checkpoints (or of `checkpoints`, names or paths).

    Returns `(output path, averaged checkpoint paths)`. The output defaults to
    `checkpoints/averaged.weights.h5` in the run, which `export --checkpoint averaged`
    then reads; it is written beside its final name and renamed in.
    """
    run = RunDirectory(run_dir)
    model = run.build_model()
    if checkpoints:
        paths = [run.resolve_checkpoint(name) for name in checkpoints]
    else:
        kept = run.epoch_checkpoints()
        if last is None or last < 1:
            raise InputError(f"--last must be a positive number of epochs, got {last!r}")
        if len(kept) < last:
            raise InputError(
                f"{run.path} keeps {len(kept)} epoch checkpoint(s) ({[p.name for p in kept]}), fewer than "
                f"--last {last}; train with training.keep_checkpoints={last} or more, or average fewer"
            )
        paths = kept[-last:]
    # Each checkpoint read once, through the run: a truncated or foreign file gets an error naming it.
    average_weights(model, paths, load=lambda path: run.load_weights(model, path))
    output = Path(output) if output else run.checkpoint("averaged")
    if not output.name.endswith(".weights.h5"):
        raise InputError(f"--output {output}: the name must end in .weights.h5")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".partial-{output.name}")
    model.save_weights(str(partial))
    os.replace(partial, output)
    return output, paths
