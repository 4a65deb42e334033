"""Trains the tiny model with Keras' Adam and with FusedAdam under a MirroredStrategy
of two logical CPU devices; prints how far apart the weights end (for tests).

    python fused_adam_mirrored.py
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from keras_seq2seq.models import Seq2SeqTransformer
    from keras_seq2seq.objectives import MaskedCrossEntropy
    from keras_seq2seq.optimizers import FusedAdam

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    ids = [rng.integers(4, 100, size=(8, 10)).astype("int32") for _ in range(3)]
    dataset = tf.data.Dataset.from_tensors(((ids[0], ids[1]), ids[2])).repeat(4)
    results = {}
    for name, optimizer in (("keras", keras.optimizers.Adam), ("fused", FusedAdam)):
        keras.utils.set_random_seed(3)
        with strategy.scope():
            model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=100, target_vocab_size=100)
            model.compile(optimizer=optimizer(1e-3), loss=MaskedCrossEntropy(0.1))
            model.build()
        model.fit(dataset, epochs=1, verbose=0)
        results[name] = [np.asarray(weight) for weight in model.weights]
        if name == "fused":
            fell_back = model.optimizer._fused_update is None
    difference = max(float(np.abs(a - b).max()) for a, b in zip(results["keras"], results["fused"]))
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "fell_back": fell_back, "difference": difference}))


if __name__ == "__main__":
    sys.exit(main())
