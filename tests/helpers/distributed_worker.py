"""Trains the tiny model a few steps under a given strategy and saves its weights (for tests).

    python distributed_worker.py OUTPUT.npz STRATEGY [LOGICAL_DEVICES]

STRATEGY is default, mirrored or multiworker (TF_CONFIG set by the caller). Every
run sees the same global batches, so all runs must end with the same weights.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GLOBAL_BATCH, LENGTH, STEPS = 16, 24, 6


def main(output, strategy_name, logical_devices=1):
    if logical_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_devices)]
        )
    from keras_seq2seq.trainer import make_strategy

    strategy = make_strategy(strategy_name)  # before any other op (multi-worker needs it)

    import keras

    from keras_seq2seq.data.corpora import read_tatoeba
    from keras_seq2seq.data.pipeline import encode_pairs
    from keras_seq2seq.data.tokenizers import END_ID, START_ID, make_tokenizer
    from keras_seq2seq.models import Seq2SeqTransformer
    from keras_seq2seq.objectives import MaskedAccuracy, MaskedCrossEntropy

    pairs, _ = read_tatoeba(FIXTURES / "tatoeba-sample.txt")
    source_ids, target_ids, _ = encode_pairs(
        pairs[: GLOBAL_BATCH * STEPS], make_tokenizer(FIXTURES / "fr.model"),
        make_tokenizer(FIXTURES / "en.model"), LENGTH,
    )

    def padded(rows):
        return np.array([np.pad(row, (0, LENGTH - len(row))) for row in rows], np.int32)

    source = padded(source_ids)
    target_in = padded([np.concatenate([[START_ID], row]) for row in target_ids])
    labels = padded([np.concatenate([row, [END_ID]]) for row in target_ids])
    dataset = tf.data.Dataset.from_tensor_slices(((source, target_in), labels)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = Seq2SeqTransformer.from_preset(
            "tiny", source_vocab_size=400, target_vocab_size=400, dropout=0.0
        )
        model.compile(
            # SGD: its update is linear in the gradient, so float noise stays float noise.
            optimizer=keras.optimizers.SGD(0.5, momentum=0.9),
            loss=MaskedCrossEntropy(0.1),
            metrics=[MaskedAccuracy()],
        )
        model.build()
        if strategy_name != "default" and not os.environ.get("WITHOUT_FIT_WORKAROUND"):
            from keras_seq2seq.distribute import enable_distributed_fit

            enable_distributed_fit(model)  # as the trainer does under a strategy
    history = model.fit(dataset, epochs=1, verbose=0)
    weights = {f"w{index}": np.asarray(w) for index, w in enumerate(model.weights)}
    weights["loss"] = np.array(history.history["loss"][-1])
    weights["accuracy"] = np.array(history.history["accuracy"][-1])
    weights["replicas"] = np.array(strategy.num_replicas_in_sync)
    np.savez(output, **weights)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
