"""Subword tokenizers: SentencePiece trained on the training split, run in-graph by keras-hub.

The reserved ids are fixed for every tokenizer of the project, so the model, the
data pipeline and the exported Translator agree on them: `[PAD]`=0, `[UNK]`=1,
`[START]`=2, `[END]`=3.
"""

import functools
import hashlib
import importlib.util
import io
from pathlib import Path

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
RESERVED_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")


def train_sentencepiece(
    texts,
    vocabulary_size,
    model_type="unigram",
    lowercase=False,
    character_coverage=0.9995,
    max_sentences=2_000_000,
):
    """Trains a SentencePiece model on `texts`; returns its serialized proto (bytes).

    Normalization is NFKC (which also turns no-break spaces into spaces), with case
    folding when `lowercase`. Characters outside `character_coverage` of the text,
    and any character never seen, become `[UNK]`.
    """
    import sentencepiece

    if vocabulary_size <= len(RESERVED_TOKENS):
        raise ValueError(f"vocabulary_size must exceed 4, got vocabulary_size={vocabulary_size!r}")
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got model_type={model_type!r}")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        character_coverage=character_coverage,
        normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=START_ID,
        eos_id=END_ID,
        pad_piece=RESERVED_TOKENS[PAD_ID],
        unk_piece=RESERVED_TOKENS[UNK_ID],
        bos_piece=RESERVED_TOKENS[START_ID],
        eos_piece=RESERVED_TOKENS[END_ID],
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        # Digits split one by one: numbers the training text never saw still tokenize.
        split_digits=True,
        hard_vocab_limit=False,
        minloglevel=2,
        # One thread: the same text gives the same model, on every worker of a cluster.
        num_threads=1,
    )
    return model.getvalue()


@functools.cache
def sentencepiece_ops():
    """tensorflow-text's SentencePiece ops (the generated op functions), registered without importing
    `tensorflow_text`.

    They are the only tensorflow-text ops a model of this package uses, in training and in an
    export; `import tensorflow_text` loads every op library it has, which costs a serving process
    0.1 GiB of resident memory and 0.2 s (benchmarks/README.md). Loaded from their library in the
    installed tensorflow-text (as `import tensorflow_text` loads it: importing it later registers
    nothing twice); where an other layout of the package has no such file, imported the usual way.
    """
    import tensorflow as tf

    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None:
        raise ModuleNotFoundError("tensorflow-text is not installed: pip install tensorflow-text",
                                  name="tensorflow_text")
    for directory in spec.submodule_search_locations or ():
        library = Path(directory) / "python" / "ops" / "_sentencepiece_tokenizer.so"
        if library.is_file():
            return tf.load_op_library(str(library))
    from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

    return gen_sentencepiece_tokenizer


def named_model_resource(proto):
    """A SentencePiece op resource whose shared name is derived from the model itself.

    tensorflow-text creates its resource without a shared name; in a loaded SavedModel
    two such resources (source and target tokenizers, or two models in one server)
    end up as one, and every tokenizer then uses the first model. Naming the resource
    after the model's hash keeps different models apart and lets equal ones share.
    """
    from tensorflow.python.trackable import resource

    shared_name = "keras_seq2seq_sentencepiece_" + hashlib.sha256(proto).hexdigest()[:24]

    class NamedSentencepieceResource(resource.TrackableResource):
        def __init__(self):
            super().__init__()
            _ = self.resource_handle  # creates the resource now, outside any trace

        def _create_resource(self):
            return sentencepiece_ops().sentencepiece_op(model=proto, shared_name=shared_name)

    return NamedSentencepieceResource()


def make_tokenizer(proto):
    """An in-graph keras-hub SentencePiece tokenizer (a Keras layer) from proto bytes or a file."""
    import keras_hub

    if isinstance(proto, (str, Path)):
        proto = Path(proto).read_bytes()
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto)
    tokenizer._sentence_piece._model_resource = named_model_resource(proto)
    check_reserved_ids(tokenizer)
    return tokenizer


def check_reserved_ids(tokenizer):
    for token_id, token in enumerate(RESERVED_TOKENS):
        found = tokenizer.id_to_token(token_id)
        if found != token:
            raise ValueError(
                f"tokenizer maps id {token_id} to {found!r}, expected {token!r}: "
                "train it with train_sentencepiece"
            )


def save_proto(proto, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(proto)
