"""Plain, uncached decoders: the references the cached searches are tested against (they re-run the
whole decoder for every output token, the TensorFlow tutorial's way; quadratic cost)."""

import tensorflow as tf

from keras_seq2seq.data.tokenizers import END_ID, PAD_ID, START_ID
from keras_seq2seq.decoding import output_length_limits


def uncached_greedy_decode(model, source_ids, max_output_length):
    """Greedy decoding that re-runs the whole decoder every step (the tutorial's way).

    For tests and benchmarks: same tokens as `greedy_decode`, quadratic cost.
    """
    source_ids = tf.convert_to_tensor(source_ids, tf.int32)
    batch_size = tf.shape(source_ids)[0]
    limits = output_length_limits(source_ids, max_output_length + 1)
    encoder_output, source_mask = model.encode(source_ids)
    target = tf.fill([batch_size, 1], START_ID)
    finished = tf.zeros([batch_size], tf.bool)
    for step in range(max_output_length):
        logits = model.decoder(target, encoder_output, source_mask)
        next_token = tf.argmax(logits[:, -1], axis=-1, output_type=tf.int32)
        next_token = tf.where(step + 1 >= limits, END_ID, next_token)
        next_token = tf.where(finished, PAD_ID, next_token)
        finished = finished | tf.equal(next_token, END_ID)
        target = tf.concat([target, next_token[:, None]], axis=1)
        if bool(tf.reduce_all(finished)):
            break
    return target[:, 1:]


def reference_beam_search(model, source, beam_size, steps):
    """Beam search in plain Python over the uncached decoder, one sentence at a time.

    The same rules as `beam_search`: one live beam at the start, a finished beam
    extends with padding at no cost, at the last step only [END] is allowed, ties go
    to the lower (beam, token) index; final order by raw score (length penalty 0).
    """
    results = []
    for row in source.numpy():
        row = row[None, : max(1, int((row != 0).sum()))]
        encoder_output, source_mask = model.encode(tf.constant(row))
        beams = [([], 0.0, False)]
        for step in range(steps):
            candidates = []
            for index, (tokens, score, finished) in enumerate(beams):
                if finished:
                    candidates.append((score, index, 0, tokens + [0], True))
                    continue
                logits = model.decoder(tf.constant([[START_ID, *tokens]]), encoder_output, source_mask)[0, -1]
                log_probabilities = tf.nn.log_softmax(logits).numpy()
                allowed = [END_ID] if step == steps - 1 else range(len(log_probabilities))
                for token in allowed:
                    total = score + float(log_probabilities[token])
                    candidates.append((total, index, token, tokens + [token], token == END_ID))
            candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
            beams = [(tokens, score, finished) for score, _, _, tokens, finished in candidates[:beam_size]]
        results.append(sorted(beams, key=lambda beam: -beam[1]))
    return results
