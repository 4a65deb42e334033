"""Training run configuration: a YAML file of four sections, checked before anything runs.

Unknown keys and bad values raise `ConfigError` naming the key (e.g. `training.epochs`).
Command-line overrides use the same dotted names: `training.epochs=3`.
"""

import dataclasses
import json
import math
from pathlib import Path

import yaml

from keras_seq2seq.errors import InputError
from keras_seq2seq.models.presets import PRESETS


class ConfigError(InputError):
    """A configuration key that is unknown or has a bad value."""


@dataclasses.dataclass
class CorpusConfig:
    # tatoeba: manythings pair file; tsv: source<TAB>target; aligned: two files; tfds: a TFDS dataset.
    kind: str = "tatoeba"
    # A path, or "default" for the Tatoeba fr-en corpus (../shared when present, else fetched).
    train: str = "default"
    dev: str = "default"
    direction: str = "other-en"
    # For kind=tfds: the dataset name, its language keys and split names.
    tfds_name: str = ""
    source_language: str = ""
    target_language: str = ""
    train_split: str = "train"
    dev_split: str = "validation"
    max_chars: int = 1000
    strict: bool = False
    # Use only the first N training pairs (0: all); for smoke runs.
    limit: int = 0


@dataclasses.dataclass
class TokenizerConfig:
    source_vocab_size: int = 8000
    target_vocab_size: int = 8000
    shared: bool = False
    lowercase: bool = False
    model_type: str = "unigram"


@dataclasses.dataclass
class ModelConfig:
    preset: str = "small"
    # Any Seq2SeqTransformer argument, e.g. {dropout: 0.2, normalize_first: true}.
    overrides: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainingConfig:
    token_budget: int = 3072
    max_length: int = 128
    too_long: str = "filter"
    epochs: int = 10
    # 0: one pass over the training data per epoch.
    steps_per_epoch: int = 0
    warmup_steps: int = 2000
    lr_scale: float = 1.0
    # Over the last N epochs the learning rate falls linearly to zero (0: no cool-down).
    cooldown_epochs: int = 0
    # Start from the weights (and tokenizers) of another run directory or export, with a new
    # optimizer; `initial_step` then continues its learning-rate curve (its step count).
    init_from: str = ""
    initial_step: int = 0
    label_smoothing: float = 0.1
    clipnorm: float = 0.0
    strategy: str = "auto"
    # Multi-worker: the longest a collective operation may wait for the other workers (0: no limit).
    collective_timeout: int = 600
    precision: str = "float32"
    jit_compile: bool = False
    seed: int = 0
    early_stopping_patience: int = 5
    # Dev-set monitoring: "loss" (every epoch) or "bleu" (greedy decoding of a dev sample).
    select_by: str = "loss"
    dev_bleu_every: int = 1
    dev_bleu_sentences: int = 500
    # Mid-epoch backup every N steps (0: at epoch ends only).
    backup_every_steps: int = 200
    # Keep each of the last N epochs' weights (checkpoints/epoch-NNN.weights.h5), for averaging.
    keep_checkpoints: int = 0
    verbose: int = 1


@dataclasses.dataclass
class RunConfig:
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def transformer_config(self, source_vocab_size, target_vocab_size):
        """The model's `TransformerConfig`: the preset with its overrides and the tokenizers' sizes;
        its `max_length` at least `training.max_length`."""
        from keras_seq2seq.models import preset_config

        preset = preset_config(self.model.preset, **self.model.overrides)
        return preset.replace(
            source_vocab_size=source_vocab_size,
            target_vocab_size=target_vocab_size,
            max_length=max(preset.max_length, self.training.max_length),
        )

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))


_CHOICES = {
    "corpus.kind": ("tatoeba", "tsv", "aligned", "tfds"),
    "corpus.direction": ("other-en", "en-other"),
    "tokenizer.model_type": ("unigram", "bpe"),
    "model.preset": tuple(PRESETS),
    "training.too_long": ("filter", "truncate"),
    "training.strategy": ("auto", "default", "mirrored", "multiworker", "tpu"),
    "training.precision": ("float32", "mixed_bfloat16", "mixed_float16"),
    "training.select_by": ("loss", "bleu"),
}
_POSITIVE = {
    "tokenizer.source_vocab_size",
    "tokenizer.target_vocab_size",
    "training.token_budget",
    "training.max_length",
    "training.epochs",
    "training.warmup_steps",
    "training.lr_scale",
    "training.dev_bleu_every",
    "training.dev_bleu_sentences",
    "corpus.max_chars",
}
_NON_NEGATIVE = {
    "corpus.limit",
    "training.steps_per_epoch",
    "training.clipnorm",
    "training.early_stopping_patience",
    "training.backup_every_steps",
    "training.keep_checkpoints",
    "training.collective_timeout",
    "training.cooldown_epochs",
    "training.initial_step",
    "training.seed",
}


def _coerce(key, value, field_type):
    """`value` as `field_type`, or ConfigError naming `key`."""
    if field_type is bool:
        if isinstance(value, bool):
            return value
    elif field_type is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif field_type is float:
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string, YAML 1.1's rule
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{key} must be a finite number, got {key}={value!r}")
            return float(number)
    elif field_type is str:
        if isinstance(value, str):
            return value
    elif field_type is dict:
        if isinstance(value, dict):
            return value
    raise ConfigError(f"{key} must be of type {field_type.__name__}, got {key}={value!r}")


def _build_section(section_name, section_class, values):
    if not isinstance(values, dict):
        raise ConfigError(f"{section_name} must be a mapping, got {section_name}={values!r}")
    fields = {field.name: field for field in dataclasses.fields(section_class)}
    kwargs = {}
    for name, value in values.items():
        key = f"{section_name}.{name}"
        if name not in fields:
            raise ConfigError(f"unknown key {key}; known keys of {section_name}: {sorted(fields)}")
        field_type = fields[name].type
        value = _coerce(key, value, field_type)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key} must be one of {list(_CHOICES[key])}, got {key}={value!r}")
        if key in _POSITIVE and value <= 0:
            raise ConfigError(f"{key} must be positive, got {key}={value!r}")
        if key in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"{key} must not be negative, got {key}={value!r}")
        kwargs[name] = value
    return section_class(**kwargs)


def _check_model(config):
    from keras_seq2seq.models import TransformerConfig

    known = set(TransformerConfig.field_names()) - {"source_vocab_size", "target_vocab_size"}  # from the tokenizers
    for name in config.model.overrides:
        if name not in known:
            raise ConfigError(f"unknown key model.overrides.{name}; known keys: {sorted(known)}")
    try:
        config.transformer_config(source_vocab_size=1, target_vocab_size=1)
    except ValueError as error:
        raise ConfigError(f"model.overrides: {error}") from None
    corpus = config.corpus
    if corpus.kind in ("tsv", "aligned") and "default" in (corpus.train, corpus.dev):
        raise ConfigError(f"corpus.kind={corpus.kind!r} needs corpus.train and corpus.dev paths, not 'default'")
    if corpus.kind == "aligned" and any(path.count(",") != 1 for path in (corpus.train, corpus.dev)):
        raise ConfigError("corpus.kind='aligned' needs corpus.train and corpus.dev as SOURCE_FILE,TARGET_FILE")
    if corpus.kind == "tfds" and not (corpus.tfds_name and corpus.source_language and corpus.target_language):
        raise ConfigError(
            "corpus.kind='tfds' needs corpus.tfds_name, corpus.source_language and corpus.target_language"
        )
    if config.training.cooldown_epochs > config.training.epochs:
        raise ConfigError(
            f"training.cooldown_epochs must be at most training.epochs={config.training.epochs}, "
            f"got training.cooldown_epochs={config.training.cooldown_epochs}"
        )
    if config.training.init_from and not Path(config.training.init_from).exists():
        raise ConfigError(
            f"training.init_from={config.training.init_from!r} does not exist; give a run directory or an export"
        )
    if config.training.token_budget < config.training.max_length:
        raise ConfigError(
            f"training.token_budget must be at least training.max_length={config.training.max_length}, "
            f"got training.token_budget={config.training.token_budget}"
        )


def config_from_dict(data):
    """A validated `RunConfig` from nested dicts (unknown sections or keys raise)."""
    data = data or {}
    sections = {field.name: field for field in dataclasses.fields(RunConfig)}
    for name in data:
        if name not in sections:
            raise ConfigError(f"unknown section {name}; known sections: {sorted(sections)}")
    config = RunConfig(
        **{
            name: _build_section(name, field.default_factory, data.get(name, {}) or {})
            for name, field in sections.items()
        }
    )
    _check_model(config)
    return config


def parse_override(text):
    """`"training.epochs=3"` -> `("training", "epochs", 3)`, the value read as YAML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"an override looks like section.key=value, got {text!r}")
    key, raw = text.split("=", 1)
    section, name = key.split(".", 1)
    return section, name, yaml.safe_load(raw)


def load_config(path=None, overrides=()):
    """Reads a YAML config (or the defaults when `path` is None) and applies dotted overrides."""
    data = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"no configuration file {path} (see training/configs/ for examples)")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not a UTF-8 text file") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of sections")
    for override in overrides:
        section, name, value = parse_override(override)
        if section == "model" and name.startswith("overrides."):
            data.setdefault("model", {}).setdefault("overrides", {})[name.split(".", 1)[1]] = value
        else:
            data.setdefault(section, {})[name] = value
    return config_from_dict(data)
