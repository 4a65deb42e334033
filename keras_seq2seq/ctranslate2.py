"""Conversion of a `Seq2SeqTransformer` and its tokenizers to a CTranslate2 model directory.

CTranslate2 (https://github.com/OpenNMT/CTranslate2) is a C++ inference engine for
Transformers; the benchmarks use it as the CPU speed ceiling, running our weights.
The conversion maps each layer onto CTranslate2's `TransformerSpec`:

    from keras_seq2seq.ctranslate2 import convert
    convert(model, source_tokenizer, target_tokenizer, "ct2-fr-en")
    translator = ctranslate2.Translator("ct2-fr-en")
    translator.translate_batch([["▁Je", "▁suis", "▁étudiant", "."]])

CTranslate2 takes and returns SentencePiece pieces; `[START]` starts the decoder and
`[END]` ends it, as in our decoding. Needs `pip install ctranslate2` (in the `bench` and
`dev` extras).
"""

from pathlib import Path

import numpy as np

from keras_seq2seq.atomic import atomic_directory
from keras_seq2seq.layers.positional_embedding import sinusoidal_positions


def _linear(spec, kernel, bias=None):
    """Keras kernels are [in, out]; CTranslate2 (like PyTorch) stores [out, in]."""
    spec.weight = np.ascontiguousarray(np.asarray(kernel, np.float32).T)
    if bias is not None:
        spec.bias = np.asarray(bias, np.float32)


def _dense(spec, *layers):
    """One CTranslate2 linear from Keras Dense layers fused along their outputs (q, k, v order)."""
    kernel = np.concatenate([np.asarray(layer.kernel) for layer in layers], axis=1)
    bias = np.concatenate([np.asarray(layer.bias) for layer in layers]) if layers[0].use_bias else None
    _linear(spec, kernel, bias)


def _norm(spec, layer_norm):
    spec.gamma = np.asarray(layer_norm.gamma, np.float32)
    spec.beta = np.asarray(layer_norm.beta, np.float32)


def _sublayer_norm(block, index):
    """The LayerNormalization around sublayer `index`: before it (pre-norm) or after the residual."""
    if block.config.normalize_first:
        return block._pre_norms[index]
    return block._add_norms[index]._layer_norm


def _embeddings(stack_spec, stack, max_length):
    # The encoder's spec has a list of embeddings (several source features), the decoder's one.
    target = stack_spec.embeddings[0] if isinstance(stack_spec.embeddings, list) else stack_spec.embeddings
    target.weight = np.asarray(stack.embedding.embeddings, np.float32)
    stack_spec.scale_embeddings = True  # ours multiply by sqrt(d_model) too
    table = sinusoidal_positions(np.arange(max_length), stack.config.d_model)
    stack_spec.position_encodings.encodings = np.asarray(table, np.float32)
    if stack.final_norm is not None:
        _norm(stack_spec.layer_norm, stack.final_norm)


def build_spec(model, source_vocabulary, target_vocabulary):
    """The CTranslate2 `TransformerSpec` holding `model`'s weights and the two vocabularies."""
    import ctranslate2

    config = model.get_config()
    if config.get("activation", "relu") != "relu":
        raise ValueError(
            f"CTranslate2 conversion supports activation='relu' only, got activation={config['activation']!r}"
        )
    encoder, decoder = model.encoder, model.decoder
    pre_norm = model.config.normalize_first
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (len(encoder.blocks), len(decoder.blocks)), model.config.num_heads, pre_norm=pre_norm
    )
    _embeddings(spec.encoder, encoder, model.config.max_length)
    _embeddings(spec.decoder, decoder, model.config.max_length)

    for block_spec, block in zip(spec.encoder.layer, encoder.blocks, strict=True):
        attention = block.self_attention  # SelfMHA: query, then joint key-value projections
        _dense(block_spec.self_attention.linear[0], attention._query_dense, attention._key_value_dense)
        _dense(block_spec.self_attention.linear[1], attention._output_dense)
        _norm(block_spec.self_attention.layer_norm, _sublayer_norm(block, 0))
        _dense(block_spec.ffn.linear_0, block.feed_forward._hidden_dense)
        _dense(block_spec.ffn.linear_1, block.feed_forward._output_dense)
        _norm(block_spec.ffn.layer_norm, _sublayer_norm(block, 1))

    for block_spec, block in zip(spec.decoder.layer, decoder.blocks, strict=True):
        _dense(block_spec.self_attention.linear[0], block.self_attention._query_key_value_dense)
        _dense(block_spec.self_attention.linear[1], block.self_attention._output_dense)
        _norm(block_spec.self_attention.layer_norm, _sublayer_norm(block, 0))
        _dense(block_spec.attention.linear[0], block.cross_attention._query_dense)
        _dense(block_spec.attention.linear[1], block.cross_attention._key_value_dense)
        _dense(block_spec.attention.linear[2], block.cross_attention._output_dense)
        _norm(block_spec.attention.layer_norm, _sublayer_norm(block, 1))
        _dense(block_spec.ffn.linear_0, block.feed_forward._hidden_dense)
        _dense(block_spec.ffn.linear_1, block.feed_forward._output_dense)
        _norm(block_spec.ffn.layer_norm, _sublayer_norm(block, 2))

    if model.config.tie_embeddings:
        _linear(spec.decoder.projection, np.asarray(decoder.embedding.embeddings).T, decoder.output_bias)
    else:
        _dense(spec.decoder.projection, decoder.output_projection)

    spec.config.unk_token = "[UNK]"
    spec.config.bos_token = "[START]"
    spec.config.eos_token = "[END]"
    spec.config.decoder_start_token = "[START]"
    spec.config.layer_norm_epsilon = 1e-6
    spec.register_source_vocabulary(list(source_vocabulary))
    spec.register_target_vocabulary(list(target_vocabulary))
    return spec


def convert(model, source_tokenizer, target_tokenizer, output_dir, quantization=None):
    """Writes a CTranslate2 model directory for `model` (float32 unless `quantization`,
    e.g. "int8" or "bfloat16", says otherwise); returns its path."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise ImportError("the CTranslate2 conversion needs `pip install ctranslate2`") from None
    spec = build_spec(model, source_tokenizer.get_vocabulary(), target_tokenizer.get_vocabulary())
    spec.validate()
    spec.optimize(quantization=quantization)
    with atomic_directory(output_dir) as staging:  # a killed conversion leaves the previous model or none
        spec.save(str(staging))
    return Path(output_dir)
