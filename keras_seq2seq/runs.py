"""The training-run directory: its layout, written by the trainer and read by export, evaluate and translate.

    config.json             the validated RunConfig
    model_config.json       the model's TransformerConfig fields (the model's get_config)
    tokenizers/             source.model, target.model (SentencePiece protos)
    checkpoints/            best.weights.h5, last.weights.h5, epoch-NNN.weights.h5 (the last
                            `training.keep_checkpoints` epochs), averaged checkpoints
    backup/                 the BackupAndRestore state a killed run resumes from
    logs/                   training.csv, tensorboard/, curves.png
    workers/N/              what worker N > 0 of a multi-worker run writes (the chief writes the rest)
"""

import json
from pathlib import Path

from keras_seq2seq.errors import InputError


class RunDirectory:
    """Paths of a run directory, and reading its model and tokenizers back."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDirectory({str(self.path)!r})"

    config = property(lambda self: self.path / "config.json")
    model_config = property(lambda self: self.path / "model_config.json")
    tokenizers = property(lambda self: self.path / "tokenizers")
    checkpoints = property(lambda self: self.path / "checkpoints")
    backup = property(lambda self: self.path / "backup")
    logs = property(lambda self: self.path / "logs")
    training_log = property(lambda self: self.path / "logs" / "training.csv")
    curves = property(lambda self: self.path / "logs" / "curves.png")
    tensorboard = property(lambda self: self.path / "logs" / "tensorboard")

    def tokenizer(self, side):
        """The SentencePiece model of `side` ("source" or "target")."""
        return self.tokenizers / f"{side}.model"

    def checkpoint(self, name):
        """The weights file of checkpoint `name` (best, last, epoch-NNN, or any NAME.weights.h5 here)."""
        return self.checkpoints / f"{name}.weights.h5"

    def epoch_checkpoint(self, epoch):
        """The checkpoint of epoch `epoch` (counted from 1)."""
        return self.checkpoint(f"epoch-{epoch:03d}")

    def epoch_checkpoints(self):
        """The epoch checkpoints kept, oldest first."""
        return sorted(self.checkpoints.glob("epoch-[0-9][0-9][0-9].weights.h5"))

    def worker(self, index):
        """Where worker `index` of a multi-worker run writes (the run itself for the chief, 0)."""
        return self if index == 0 else RunDirectory(self.path / "workers" / str(index))

    def create(self):
        for directory in (self.checkpoints, self.logs, self.tokenizers):
            directory.mkdir(parents=True, exist_ok=True)
        return self

    @staticmethod
    def is_run(path):
        return (Path(path) / "model_config.json").is_file()

    def write_model_config(self, model):
        self.model_config.write_text(json.dumps(model.get_config(), indent=2))

    def build_model(self):
        """The run's model, built, with fresh weights, computing in float32 whatever the training precision."""
        from keras_seq2seq.models import Seq2SeqTransformer

        if not self.is_run(self.path):
            raise InputError(describe_non_model(self.path))
        config = json.loads(self.model_config.read_text())
        model = Seq2SeqTransformer.from_config({**config, "dtype": "float32"})
        model.build()
        return model

    def resolve_checkpoint(self, checkpoint):
        """The weights file of `checkpoint`: a name here (best, last, epoch-NNN...) or a path to a file."""
        path = Path(checkpoint)
        if path.suffix == ".h5" or len(path.parts) > 1:
            if not path.is_file():
                raise InputError(f"--checkpoint {checkpoint}: no such file")
            return path
        weights = self.checkpoint(checkpoint)
        if not weights.is_file():
            present = sorted(p.name[: -len(".weights.h5")] for p in self.checkpoints.glob("*.weights.h5"))
            raise InputError(
                f"{self.path} has no {checkpoint} checkpoint ({weights} is missing); it has: {present or 'none'}"
            )
        return weights

    def load_weights(self, model, checkpoint):
        """Loads checkpoint `checkpoint` into `model`; a file that cannot be read raises InputError naming it."""
        weights = self.resolve_checkpoint(checkpoint)
        try:
            model.load_weights(str(weights))
        except (OSError, ValueError) as error:
            others = [p.name for p in self.checkpoints.glob("*.weights.h5") if p != weights]
            raise InputError(
                f"{weights} cannot be read ({' '.join(str(error).split())[:200]}): it may be truncated or "
                f"corrupt, or belong to another model; other checkpoints here: {others or 'none'}"
            ) from error
        return model

    def load_tokenizers(self):
        from keras_seq2seq.data.tokenizers import make_tokenizer

        return make_tokenizer(self.tokenizer("source")), make_tokenizer(self.tokenizer("target"))


def load_run(path, checkpoint="best"):
    """`(model, source_tokenizer, target_tokenizer)` of a training run directory or of an export.

    A run directory gives its `checkpoint` (best, last, epoch-NNN, a name under
    checkpoints/, or a path to a `.weights.h5` file of the same model); a SavedModel
    written by `export_translator` gives the weights it holds (`checkpoint` is
    ignored), so a shipped model can be fine-tuned or exported again.
    """
    from keras_seq2seq.serving.saved_model import is_saved_model, load_keras_model

    if is_saved_model(path):
        return load_keras_model(path)
    run = RunDirectory(path)
    model = run.load_weights(run.build_model(), checkpoint)
    return (model, *run.load_tokenizers())


def tokenizer_files(path):
    """`{"source": file, "target": file}`: the SentencePiece models of a run directory or an export."""
    from keras_seq2seq.serving.saved_model import SOURCE_PROTO, TARGET_PROTO, is_saved_model

    if is_saved_model(path):
        extra = Path(path) / "assets.extra"
        return {"source": extra / SOURCE_PROTO, "target": extra / TARGET_PROTO}
    run = RunDirectory(path)
    return {side: run.tokenizer(side) for side in ("source", "target")}


def describe_non_model(path):
    """What is wrong with `path` as a model: a message for `InputError`."""
    path = Path(path)
    if not path.exists():
        return f"{path} does not exist; give a SavedModel exported by keras-seq2seq or a training run directory"
    if path.is_file():
        hint = " (a .keras file loads with keras.saving.load_model)" if path.suffix == ".keras" else ""
        return f"{path} is a file; give a SavedModel directory or a training run directory{hint}"
    return (
        f"{path} is neither a SavedModel (no saved_model.pb) nor a training run directory "
        "(no model_config.json)"
    )
