"""Named model sizes, as `TransformerConfig`s. Vocabulary sizes come from the tokenizers, not from here."""

from keras_seq2seq.models.config import TransformerConfig

PRESETS = {
    # For tests: builds and runs in milliseconds.
    "tiny": TransformerConfig(num_layers=2, d_model=32, num_heads=4, ff_dim=64, dropout=0.0, max_length=64),
    # Trains on a 2-core CPU in an hour or two (3+3 layers, 256 wide).
    "small": TransformerConfig(
        num_layers=3, d_model=256, num_heads=4, ff_dim=1024, dropout=0.1, max_length=128, tie_embeddings=True
    ),
    # The base model of Vaswani et al. (2017): 6+6 layers, 512 wide, 8 heads, ff 2048.
    "base": TransformerConfig(
        num_layers=6, d_model=512, num_heads=8, ff_dim=2048, dropout=0.1, max_length=256, tie_embeddings=True
    ),
}


def preset_config(name, **overrides):
    """The `TransformerConfig` of preset `name` with `overrides` applied (ValueError naming a bad one)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
