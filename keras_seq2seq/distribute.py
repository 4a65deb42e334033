"""Multi-worker training with Keras 3 `model.fit` on TensorFlow.

Each worker runs the same command with its own `TF_CONFIG`, for example for two
workers on one machine:

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
                "task": {"type": "worker", "index": 0}}' keras-seq2seq train ... training.strategy=multiworker
    (and index 1 in a second shell)

Worker 0 is the chief: it writes checkpoints and logs into the run directory; the
others write theirs into a `workers/N` sub-directory that can be deleted afterwards.
"""

import json
import os

import tensorflow as tf


def multi_worker_strategy(collective_timeout=0):
    """A `MultiWorkerMirroredStrategy` from `TF_CONFIG`, ready for Keras 3 `model.fit`.

    A worker that dies stops sending heartbeats to TensorFlow's coordination service,
    which then aborts the others' collectives (an `UnavailableError` within about 20 s
    here). `collective_timeout` (seconds, 0 for none) also bounds each collective
    operation, for a worker that is alive but stuck.
    """
    if "TF_CONFIG" not in os.environ:
        raise ValueError("training.strategy=multiworker needs TF_CONFIG (see keras_seq2seq/distribute.py)")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout or None)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    _patch_scalar_reduction()
    return strategy


def _patch_scalar_reduction():
    """Lets Keras reduce the scalar step outputs (loss, metrics) of a multi-worker step.

    For Keras 3.x up to at least 3.15, the version tested here (its TensorFlow trainer's `reduce_per_replica`);
    applied only when a multi-worker strategy is made, and only to that strategy's
    reductions. It can go when the multi-worker test passes without it.

    Keras 3 reduces every per-replica output with `strategy.reduce("MEAN", value, axis=0)`
    under multi-worker collectives, which fails for scalars ("Invalid reduction
    dimension 0 for input with 0 dimensions"). Scalars are reduced over replicas
    with `axis=None` instead; everything else goes to Keras unchanged.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "_keras_seq2seq_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):

            def reduce(value):
                if not isinstance(value, tf.distribute.DistributedValues):
                    return value
                rank = strategy.experimental_local_results(value)[0].shape.rank
                return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

            return tree.map_structure(reduce, values)
        return original(values, strategy, reduction)

    reduce_per_replica._keras_seq2seq_patched = True
    keras_trainer.reduce_per_replica = reduce_per_replica


def tf_config():
    """The parsed `TF_CONFIG` (`{}` without one)."""
    return json.loads(os.environ.get("TF_CONFIG", "{}"))


def worker_index():
    """This worker's index in TF_CONFIG (0 without one)."""
    return int(tf_config().get("task", {}).get("index", 0))


def enable_distributed_fit(model):
    """Makes Keras 3 `model.fit` of `model` work under `MultiWorkerMirroredStrategy` (TensorFlow backend).

    For Keras 3.x up to at least 3.15, the version tested here (keras-team/keras#20585): `fit` builds the
    model symbolically from a first batch that it averages over replicas with
    `strategy.reduce`, and with multi-worker collectives that reduction of integer
    token ids fails. Only the shapes matter for that build, so this model takes the
    first local replica's batch instead. The trainer applies it to the model it trains
    under a distribution strategy; other models are untouched. It can go when
    `tests/test_distribute.py` passes with it removed.
    """
    model_class = type(model)

    def _maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and model._distribute_strategy is not None:
            from keras.src import tree

            for _, _, batches in iterator:
                batch = next(batches)
                data_batch = tree.map_structure(
                    lambda value: model._distribute_strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues)
                    else value,
                    batch,
                )
                break
            iterator = None
        return model_class._maybe_symbolic_build(model, iterator=iterator, data_batch=data_batch)

    model._maybe_symbolic_build = _maybe_symbolic_build
    return model
