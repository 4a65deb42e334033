"""Training a Seq2SeqTransformer from a `RunConfig` with `model.fit` under a `tf.distribute` strategy.

Everything the run writes (configuration, tokenizers, checkpoints, backup, logs) goes to a
`RunDirectory` (see `keras_seq2seq.runs` for the layout); a run started again in the same
directory resumes from its backup.
"""

import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_seq2seq import distribute
from keras_seq2seq.data import corpora, pipeline, tokenizers
from keras_seq2seq.data.fetch import default_corpus_files
from keras_seq2seq.distribute import worker_index
from keras_seq2seq.errors import InputError, WorkerLost
from keras_seq2seq.models import Seq2SeqTransformer
from keras_seq2seq.objectives import MaskedAccuracy, MaskedCrossEntropy, TransformerSchedule
from keras_seq2seq.optimizers import FusedAdam
from keras_seq2seq.run_config import ConfigError
from keras_seq2seq.runs import RunDirectory, load_run, tokenizer_files


def log(message):
    print(f"[keras-seq2seq] {message}", flush=True)


def load_pairs(corpus):
    """(train_pairs, dev_pairs) for a `CorpusConfig`, with each file's report logged."""
    if corpus.kind == "tfds":
        from keras_seq2seq.data.tfds_sources import load_tfds_pairs

        return load_tfds_pairs(corpus)
    files = {"train": corpus.train, "dev": corpus.dev}
    if "default" in files.values():
        defaults = default_corpus_files()
        files = {name: defaults[name] if path == "default" else path for name, path in files.items()}
    pairs = {}
    for name, path in files.items():
        if corpus.kind == "tatoeba":
            pairs[name], report = corpora.read_tatoeba(path, corpus.direction, corpus.strict, corpus.max_chars)
        elif corpus.kind == "tsv":
            pairs[name], report = corpora.read_columns(path, 0, 1, corpus.strict, corpus.max_chars)
        else:
            source_path, target_path = path.split(",")
            pairs[name], report = corpora.read_aligned(source_path, target_path, corpus.strict, corpus.max_chars)
        log(report.summary())
        if not pairs[name]:
            raise InputError(
                f"no usable pair in the {name} corpus: {report.summary()}; check corpus.kind "
                f"({corpus.kind!r}), corpus.direction and the file's encoding (UTF-8, one pair a line)"
            )
    train = pairs["train"][: corpus.limit] if corpus.limit else pairs["train"]
    return train, pairs["dev"]


def prepare_tokenizers(config, train_pairs, run):
    """Trains the SentencePiece models on the training pairs, or reloads the run's own (a `RunDirectory`)."""
    paths = {side: run.tokenizer(side) for side in ("source", "target")}
    if config.training.init_from and not all(path.exists() for path in paths.values()):
        for side, origin in tokenizer_files(config.training.init_from).items():
            if not origin.is_file():
                raise InputError(f"training.init_from: no {side} tokenizer {origin} to reuse")
            tokenizers.save_proto(origin.read_bytes(), paths[side])
        log(f"tokenizers taken from {config.training.init_from}")
    if not all(path.exists() for path in paths.values()):
        settings = config.tokenizer
        train = lambda texts, size: tokenizers.train_sentencepiece(
            texts, size, settings.model_type, settings.lowercase
        )
        sources = [source for source, _ in train_pairs]
        targets = [target for _, target in train_pairs]
        if settings.shared:
            shared = train(sources + targets, settings.source_vocab_size)
            protos = {"source": shared, "target": shared}
        else:
            protos = {
                "source": train(sources, settings.source_vocab_size),
                "target": train(targets, settings.target_vocab_size),
            }
        for name, proto in protos.items():
            tokenizers.save_proto(proto, paths[name])
        log(f"trained SentencePiece tokenizers in {run.tokenizers}")
    return run.load_tokenizers()


def initialize_from(model, path):
    """Sets `model`'s weights to those of the run directory (its best checkpoint) or export at `path`;
    the two models must have the same configuration."""
    origin, _, _ = load_run(path)
    mine = {key: value for key, value in model.get_config().items() if key not in ("name", "dtype", "trainable")}
    theirs = {key: value for key, value in origin.get_config().items() if key not in ("name", "dtype", "trainable")}
    differences = {key: (theirs.get(key), value) for key, value in mine.items() if theirs.get(key) != value}
    if differences:
        described = ", ".join(f"{key}: {was!r} there, {now!r} here" for key, (was, now) in sorted(differences.items()))
        raise ConfigError(f"training.init_from={str(path)!r} holds another model ({described})")
    model.set_weights(origin.get_weights())
    log(f"weights taken from {path}")


def make_strategy(name, collective_timeout=0):
    """The tf.distribute strategy for `--strategy` (see `training.strategy`)."""
    if name == "auto":
        # Physical, not logical, devices: listing logical ones would start the runtime.
        name = "mirrored" if tf.config.list_physical_devices("GPU") else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        from keras_seq2seq.distribute import multi_worker_strategy

        return multi_worker_strategy(collective_timeout)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


class NaNGuard(keras.callbacks.Callback):
    """Stops training with a message at the first non-finite loss, before any checkpoint is written."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"loss became {loss} at batch {batch}; stopped before saving. The last good "
                "checkpoint and backup are untouched: lower training.lr_scale or set training.clipnorm."
            )


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the current learning rate to the logs (progress bar, CSV, TensorBoard)."""

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)

    on_epoch_end = on_train_batch_end


class DevBleu(keras.callbacks.Callback):
    """Adds `val_bleu` (sacreBLEU of greedy translations of a dev sample) to the logs every `every` epochs.

    It runs before the checkpoint and early-stopping callbacks, which can then monitor it.
    """

    def __init__(self, source_tokenizer, target_tokenizer, dev_pairs, every=1, batch_size=100):
        super().__init__()
        self.tokenizers = (source_tokenizer, target_tokenizer)
        self.sources = [source for source, _ in dev_pairs]
        self.references = [target for _, target in dev_pairs]
        self.every = every
        self.batch_size = batch_size

    def on_train_begin(self, logs=None):
        from keras_seq2seq.serving import Translator

        # Compiled once; its steps read the layers' weights, which change between epochs.
        self.translator = Translator(self.model, *self.tokenizers, step_copies=False)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.every:
            return
        import sacrebleu

        hypotheses = []
        for start in range(0, len(self.sources), self.batch_size):
            batch = tf.constant(self.sources[start : start + self.batch_size])
            outputs = self.translator.translate(batch)["translation"].numpy()
            hypotheses.extend(text.decode("utf-8") for text in outputs)
        logs["val_bleu"] = sacrebleu.corpus_bleu(hypotheses, [self.references]).score
        log(f"epoch {epoch + 1}: dev BLEU {logs['val_bleu']:.2f} on {len(self.sources)} sentences")


def remember_keras_saving_skipsets():
    """Makes Keras' weight saving compute its attribute skip sets once per process, not once per object.

    Keras 3 (3.15 checked) caches `saving_lib.get_attr_skipset` under one key and looks it up
    under another, so every `save_weights` builds a reference Layer (or Optimizer, Metric...)
    for each object it walks: 40% of a save (0.14 s of 0.34 s for any of our models, several
    saves an epoch). This stores each skip set under the key Keras reads; should Keras
    change, it does nothing.
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving import saving_lib
    except ImportError:
        return
    for kind in ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss"):
        key = f"saving_attr_skiplist_{kind}"
        try:
            if global_state.get_global_attribute(key, None) is None:
                global_state.set_global_attribute(key, saving_lib.get_attr_skipset(kind))
        except Exception:  # a Keras without this function or these kinds: nothing to remember
            return


class EpochCheckpoints(keras.callbacks.Callback):
    """Saves `epoch-NNN.weights.h5` (NNN from 001) at each epoch's end and keeps the last `keep` of them.

    Each file is written beside its final name and renamed in, so a kill never leaves a
    truncated epoch checkpoint; these are what `keras-seq2seq average` averages. When the
    `last` checkpoint was written at this epoch's end (by the callback before this one), it is
    copied: the same weights, without a second pass of Keras' saving over every layer (a
    third of a second for any model, most of an epoch of the tests' tiny one).
    """

    def __init__(self, run, keep):
        super().__init__()
        self.run = run
        self.keep = keep
        self._epoch_began = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_began = time.time()

    def on_epoch_end(self, epoch, logs=None):
        path = self.run.epoch_checkpoint(epoch + 1)
        partial = path.with_name(f".partial-{path.name}")
        last = self.run.checkpoint("last")
        if self._epoch_began is not None and last.is_file() and last.stat().st_mtime >= self._epoch_began:
            shutil.copyfile(last, partial)
        else:
            self.model.save_weights(str(partial))
        os.replace(partial, path)
        for old in self.run.epoch_checkpoints()[: -self.keep]:
            old.unlink()


class EpochAndStepBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` (two copies), saving every `save_freq` steps and at each epoch's end.

    Keras' callback saves at one or the other: with steps only, a run killed after an
    epoch ended but before the next step backup resumes inside that finished epoch
    and logs it twice. Here a finished epoch is always in the backup.
    """

    def __init__(self, backup_dir, save_freq="epoch"):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=True)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._batches_seen_since_last_saving = 0
            self._save_model()


def resumed_epoch(backup_dir):
    """The epoch a run resumed from `backup_dir` starts at, 0 without a backup.

    As Keras' `BackupAndRestore` chooses: the latest copy, or the previous one (`.bkp`)
    when the latest weights cannot be read (a kill while they were written).
    """
    import h5py

    backup_dir = Path(backup_dir)
    for suffix in ("", ".bkp"):
        weights = backup_dir / f"latest.weights.h5{suffix}"
        try:
            if weights.exists():
                h5py.File(weights, "r").close()
            return int(json.loads((backup_dir / f"training_metadata.json{suffix}").read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0


def drop_logged_epochs(csv_path, first_epoch):
    """Removes the CSV rows of epochs >= `first_epoch`: a resumed run trains and logs them again."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return
    lines = csv_path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < first_epoch]
    if len(kept) < len(lines):
        csv_path.write_text("".join(kept))
        log(f"resuming at epoch {first_epoch + 1}: dropped {len(lines) - len(kept)} logged row(s) of later epochs")


def plot_curves(csv_path, png_path):
    """PNG of loss and accuracy (train and dev) per epoch, and dev BLEU when it was measured."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    epochs = [int(row["epoch"]) + 1 for row in rows]
    panels = [("loss", ("", "val_")), ("accuracy", ("", "val_"))]
    if any(row.get("val_bleu") not in (None, "", "NA") for row in rows):
        panels.append(("bleu", ("val_",)))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for axis, (metric, prefixes) in zip(axes, panels):
        for prefix in prefixes:
            points = [(epoch, float(row[prefix + metric])) for epoch, row in zip(epochs, rows)
                      if row.get(prefix + metric) not in (None, "", "NA")]
            if points:
                axis.plot(*zip(*points), marker="o", label="dev" if prefix else "train")
        axis.set_xlabel("epoch")
        axis.set_title("dev BLEU (greedy, sample)" if metric == "bleu" else metric)
        axis.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def _lost_worker(error, collective_timeout):
    """What a collective's error says of the lost worker, in a few words.

    The coordination service names a worker that stopped sending heartbeats; a collective whose
    connection to a dead worker failed first names it as the remote target, or by its address (from
    `TF_CONFIG`'s cluster): a worker other than this one, named so, is the lost one. An unreachable
    peer that the error does not name, in a cluster of two, can only be the other worker.
    """
    import re

    text = " ".join(str(error.message).split())
    unhealthy = re.search(r"unhealthy \(stopped sending heartbeats\): (/job:\w+/replica:\d+/task:\d+)", text)
    if unhealthy:
        return f"{unhealthy.group(1)} stopped sending heartbeats (killed or crashed)"
    if isinstance(error, tf.errors.DeadlineExceededError):
        return f"a collective operation waited more than training.collective_timeout={collective_timeout} s"
    cluster = distribute.tf_config().get("cluster", {})
    tasks = {(job, index): address for job, addresses in cluster.items() for index, address in enumerate(addresses)}
    named = {(job, int(index)) for job, index in re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", text)}
    named |= {task for task, address in tasks.items() if re.search(rf"{re.escape(address)}(?!\d)", text)}
    me = ("worker", worker_index())
    others = sorted(named - {me})
    if not named and len(tasks) == 2 and me in tasks:  # (no task named: in a cluster of two, the other one)
        others = sorted(set(tasks) - {me})
    if len(others) == 1 and isinstance(error, tf.errors.UnavailableError):
        job, index = others[0]
        return f"/job:{job}/replica:0/task:{index} could not be reached (killed or crashed)"
    return f"a collective operation failed ({type(error).__name__}: {text[:200]})"


def train(config, run_dir):
    """Runs (or resumes) the training described by `config` in `run_dir`; returns the Keras History."""
    settings = config.training
    # First: multi-worker collectives must be configured before any other TensorFlow op runs.
    strategy = make_strategy(settings.strategy, settings.collective_timeout)
    run = RunDirectory(run_dir)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        run = run.worker(worker_index())  # only the chief writes the run itself
    run.create()
    config.save(run.config)
    keras.utils.set_random_seed(settings.seed)
    if settings.precision != "float32":
        keras.mixed_precision.set_global_policy(settings.precision)

    train_pairs, dev_pairs = load_pairs(config.corpus)
    source_tokenizer, target_tokenizer = prepare_tokenizers(config, train_pairs, run)
    encoded = {}
    for name, pairs in (("train", train_pairs), ("dev", dev_pairs)):
        source_ids, target_ids, report = pipeline.encode_pairs(
            pairs, source_tokenizer, target_tokenizer, settings.max_length, settings.too_long
        )
        log(f"{name}: {report.summary()}")
        encoded[name] = (source_ids, target_ids)

    dataset_args = dict(
        token_budget=settings.token_budget,
        max_length=settings.max_length,
        seed=settings.seed,
        pad_to_bucket_boundary=settings.jit_compile,
    )
    steps_per_epoch = settings.steps_per_epoch or sum(
        1 for _ in pipeline.make_dataset(*encoded["train"], shuffle=False, **dataset_args)
    )
    train_data = pipeline.make_dataset(*encoded["train"], repeat=True, **dataset_args)
    dev_data = pipeline.make_dataset(*encoded["dev"], shuffle=False, **dataset_args)

    log(f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s); "
        f"{steps_per_epoch} steps per epoch")
    distributed = strategy is not tf.distribute.get_strategy()  # asked outside the scope, where it is the default
    with strategy.scope():
        model = Seq2SeqTransformer(
            config.transformer_config(source_tokenizer.vocabulary_size(), target_tokenizer.vocabulary_size())
        )
        optimizer = FusedAdam(
            TransformerSchedule(
                model.config.d_model,
                settings.warmup_steps,
                settings.lr_scale,
                step_offset=settings.initial_step,
                total_steps=settings.epochs * steps_per_epoch,
                cooldown_steps=settings.cooldown_epochs * steps_per_epoch,
            ),
            beta_1=0.9,
            beta_2=0.98,
            epsilon=1e-9,
            clipnorm=settings.clipnorm or None,
        )
        model.compile(
            optimizer=optimizer,
            loss=MaskedCrossEntropy(settings.label_smoothing),
            metrics=[MaskedAccuracy()],
            jit_compile=settings.jit_compile,
        )
        model.build()
        if settings.init_from and not any(run.backup.glob("training_metadata.json*")):  # not resuming
            initialize_from(model, settings.init_from)
        if distributed:  # Keras needs a hand
            distribute.enable_distributed_fit(model)
    run.write_model_config(model)
    log(f"model {config.model.preset}: {model.count_params():,} parameters")

    callbacks = [NaNGuard(), LearningRateLogger()]
    monitor, mode = "val_loss", "min"
    if settings.select_by == "bleu":
        monitor, mode = "val_bleu", "max"
        callbacks.append(
            DevBleu(
                source_tokenizer,
                target_tokenizer,
                dev_pairs[: settings.dev_bleu_sentences],
                every=settings.dev_bleu_every,
            )
        )
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(run.checkpoint("best")),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.ModelCheckpoint(
            str(run.checkpoint("last")), save_weights_only=True
        ),
        *([EpochCheckpoints(run, settings.keep_checkpoints)] if settings.keep_checkpoints else []),
        keras.callbacks.CSVLogger(str(run.training_log), append=True),
        keras.callbacks.TensorBoard(str(run.tensorboard), write_graph=False),
    ]
    if settings.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=settings.early_stopping_patience)
        )
    # Last: an epoch is marked done in the backup only after everything it writes is written.
    callbacks.append(EpochAndStepBackup(str(run.backup), save_freq=settings.backup_every_steps or "epoch"))
    drop_logged_epochs(run.training_log, resumed_epoch(run.backup))
    remember_keras_saving_skipsets()
    try:
        history = model.fit(
            train_data,
            epochs=settings.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=dev_data,
            callbacks=callbacks,
            verbose=settings.verbose if os.environ.get("CI") is None else 2,
        )
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError) as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise WorkerLost(
            f"worker {worker_index()} stopped: {_lost_worker(error, settings.collective_timeout)}. Start every "
            "worker's command again: each resumes from its backup"
        ) from error
    plot_curves(run.training_log, run.curves)
    log(f"training done; checkpoints in {run.checkpoints}")
    return history
