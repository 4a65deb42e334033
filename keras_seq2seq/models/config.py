"""`TransformerConfig`: the hyper-parameters of an encoder-decoder Transformer, validated once."""

import dataclasses
import numbers

ACTIVATIONS = ("relu", "gelu", "silu", "swish")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """What an encoder-decoder Transformer is made of; every model class takes one.

    A config is checked when it is made (`ValueError` naming the bad field) and
    cannot change afterwards; `replace` makes a changed copy, checked again.

    Args:
        num_layers: encoder blocks, and decoder blocks unless `num_decoder_layers` is set.
        d_model: width of the streams; must be divisible by `num_heads`.
        num_heads: attention heads.
        ff_dim: hidden size of the feed-forward blocks.
        dropout: residual and embedding dropout, in [0, 1).
        max_length: longest source or target sequence, in tokens.
        source_vocab_size, target_vocab_size: vocabulary sizes (id 0 is padding);
            None in presets, where the tokenizers decide them.
        num_decoder_layers: decoder blocks, when different from `num_layers`.
        attention_dropout: dropout on attention probabilities, in [0, 1).
        ff_dropout: dropout on the feed-forward hidden activations, in [0, 1)
            (tensor2tensor's "relu dropout"; the paper has none).
        activation: feed-forward activation: relu, gelu, silu or swish.
        normalize_first: pre-norm blocks (and a final LayerNorm per stack) instead
            of the paper's post-norm (AddNorm).
        tie_embeddings: project to the target vocabulary with the transposed target
            embedding matrix (plus a bias) instead of a separate matrix.

    Example:

    >>> config = TransformerConfig(num_layers=2, d_model=64, num_heads=4, ff_dim=128)
    >>> config.replace(num_decoder_layers=1).decoder_layers
    1
    """

    num_layers: int
    d_model: int
    num_heads: int
    ff_dim: int
    dropout: float = 0.1
    max_length: int = 256
    source_vocab_size: int | None = None
    target_vocab_size: int | None = None
    num_decoder_layers: int | None = None
    attention_dropout: float = 0.0
    ff_dropout: float = 0.0
    activation: str = "relu"
    normalize_first: bool = False
    tie_embeddings: bool = False

    def __post_init__(self):
        optional = ("source_vocab_size", "target_vocab_size", "num_decoder_layers")
        for name in ("num_layers", "d_model", "num_heads", "ff_dim", "max_length", *optional):
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        for name in ("dropout", "attention_dropout", "ff_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {name}={value!r}")
        for name in ("normalize_first", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {name}={getattr(self, name)!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={self.d_model!r} "
                f"and num_heads={self.num_heads!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got activation={self.activation!r}")

    @classmethod
    def field_names(cls):
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values):
        """A config from a mapping of field names (e.g. a `get_config()` or `model_config.json`)."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown TransformerConfig field {unknown[0]!r}; fields: {list(cls.field_names())}")
        return cls(**values)

    def replace(self, **changes):
        """A copy with `changes` applied (and checked); an unknown name raises ValueError naming it."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def decoder_layers(self):
        return self.num_decoder_layers or self.num_layers

    def require_vocabularies(self):
        """Raises ValueError when a vocabulary size is still unset (a preset not given its tokenizers')."""
        for name in ("source_vocab_size", "target_vocab_size"):
            if getattr(self, name) is None:
                raise ValueError(f"{name} must be set to build a model (it comes from the tokenizer)")
        return self


def as_config(config):
    """`config` as a `TransformerConfig` (from a config or a dict of its fields, as `from_config` passes)."""
    return config if isinstance(config, TransformerConfig) else TransformerConfig.from_dict(config)
