"""A picture of the cross-attention: which source pieces each output piece looked at."""

import numpy as np
import tensorflow as tf

from keras_seq2seq.data.tokenizers import END_ID, PAD_ID, START_ID
from keras_seq2seq.decoding import greedy_decode


def cross_attention_map(model, source_tokenizer, target_tokenizer, sentence):
    """`(source_pieces, target_pieces, weights [target, source])` for the greedy translation.

    The weights are the last decoder block's cross-attention probabilities, averaged over heads.
    """
    source_ids = tf.constant([source_tokenizer([sentence])[0]], tf.int32)
    output_ids, _ = greedy_decode(model, source_ids)
    output = [int(i) for i in output_ids.numpy()[0] if i not in (PAD_ID,)]
    target_in = tf.constant([[START_ID] + output[:-1] if output and output[-1] == END_ID else [START_ID] + output])
    weights = model.cross_attention_weights(source_ids, target_in).numpy()[0].mean(axis=0)
    source_pieces = [source_tokenizer.id_to_token(int(i)) for i in source_ids.numpy()[0]]
    target_pieces = [target_tokenizer.id_to_token(i) for i in output]
    return source_pieces, target_pieces, weights[: len(target_pieces)]


def plot_cross_attention(model, source_tokenizer, target_tokenizer, sentence, path):
    """Writes a PNG heat map of the cross-attention for `sentence`; returns the translation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source_pieces, target_pieces, weights = cross_attention_map(
        model, source_tokenizer, target_tokenizer, sentence
    )
    figure, axis = plt.subplots(figsize=(1 + 0.5 * len(source_pieces), 1 + 0.4 * len(target_pieces)))
    axis.imshow(np.asarray(weights), cmap="viridis", vmin=0.0)
    axis.set_xticks(range(len(source_pieces)), source_pieces, rotation=90)
    axis.set_yticks(range(len(target_pieces)), target_pieces)
    axis.set_xlabel("source pieces")
    axis.set_ylabel("output pieces")
    translation = target_tokenizer.detokenize([[i for i in map(target_tokenizer.token_to_id, target_pieces)]])[0]
    axis.set_title(f"{sentence}\n-> {translation}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return translation
