import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq import Translator, load_run
from keras_seq2seq.data.tokenizers import END_ID, START_ID
from keras_seq2seq.decoding import LoopPart, beam_search, cache_block_sizes, greedy_decode, sample_decode
from keras_seq2seq.models import Seq2SeqTransformer
from keras_seq2seq.serving.translator import _bucketed_batch
from tests.decoding.reference import reference_beam_search, uncached_greedy_decode


@pytest.fixture(scope="module")
def trained(tiny_run):
    return load_run(tiny_run[0], "last")


def _source_batch(source_tokenizer, sentences):
    # Called eagerly, keras-hub tokenizers return Python lists of ids.
    return tf.ragged.constant(source_tokenizer(sentences), dtype=tf.int32).to_tensor()


def test_cached_greedy_equals_uncached_token_for_token(trained):
    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Va !", "Il est là, je crois ?"])
    cached, _ = greedy_decode(model, source, max_output_length=20)
    uncached = uncached_greedy_decode(model, source, max_output_length=20)
    width = min(cached.shape[1], uncached.shape[1])
    np.testing.assert_array_equal(cached.numpy()[:, :width], uncached.numpy()[:, :width])
    assert (cached.numpy() == END_ID).any(axis=1).all()


def test_memorised_pair_is_translated(trained):
    model, source_tokenizer, target_tokenizer = trained
    token_ids, _ = greedy_decode(model, _source_batch(source_tokenizer, ["Je suis étudiant."]))
    assert target_tokenizer.detokenize(token_ids)[0] == "I am a student."


def test_batching_does_not_change_translations(trained):
    model, source_tokenizer, _ = trained
    sentences = ["Je suis étudiant.", "Va !", "Il est là, je crois ?"]
    batch, _ = greedy_decode(model, _source_batch(source_tokenizer, sentences))
    for index, sentence in enumerate(sentences):
        alone, _ = greedy_decode(model, _source_batch(source_tokenizer, [sentence]))
        alone = alone.numpy()[0]
        np.testing.assert_array_equal(batch.numpy()[index][: len(alone)], alone)


def test_suppressed_end_forces_exact_length(trained):
    model, source_tokenizer, _ = trained
    token_ids, _ = greedy_decode(
        model, _source_batch(source_tokenizer, ["Va !"]), max_output_length=12, suppress_end=True
    )
    assert token_ids.shape == (1, 12)
    assert not (token_ids.numpy() == END_ID).any()


def test_beam_of_one_equals_greedy(trained):
    from keras_seq2seq.decoding import beam_search

    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Va !", "Il est là, je crois ?"])
    greedy, greedy_scores = greedy_decode(model, source, max_output_length=20)
    beams, beam_scores = beam_search(model, source, beam_size=1, length_penalty=0.0, max_output_length=20)
    width = min(greedy.shape[1], beams.shape[2])
    np.testing.assert_array_equal(beams.numpy()[:, 0, :width], greedy.numpy()[:, :width])
    np.testing.assert_allclose(beam_scores.numpy()[:, 0], greedy_scores.numpy(), atol=1e-4)


def test_beam_scores_sorted_and_n_best_distinct(trained):
    from keras_seq2seq.decoding import beam_search

    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Il est là, je crois ?"])
    beams, scores = beam_search(model, source, beam_size=4)
    scores = scores.numpy()
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    for sentence in beams.numpy():
        hypotheses = {tuple(row[row != 0]) for row in sentence}
        assert len(hypotheses) == 4
        assert all(hypothesis[-1] == END_ID for hypothesis in hypotheses)


def test_beam_search_finds_at_least_the_greedy_score(trained):
    from keras_seq2seq.decoding import beam_search

    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Il est là, je crois ?", "Va !"])
    _, greedy_scores = greedy_decode(model, source)
    _, beam_scores = beam_search(model, source, beam_size=4, length_penalty=0.0)
    assert (beam_scores.numpy()[:, 0] >= greedy_scores.numpy() - 1e-4).all()


def test_beam_search_equals_a_plain_uncached_beam_search(trained):
    """Every beam's tokens and score, against the reference (which runs the first step
    on the single start beam, as `beam_search` now does, and every later one on all beams)."""
    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Il est là, je crois ?", "Va !"])
    steps = 7
    beams, scores = beam_search(model, source, beam_size=3, length_penalty=0.0, max_output_length=steps)
    for sentence, expected in enumerate(reference_beam_search(model, source, 3, steps)):
        for rank, (tokens, score, _) in enumerate(expected):
            got = beams.numpy()[sentence, rank]
            np.testing.assert_array_equal(got[: len(tokens)], tokens)
            np.testing.assert_allclose(scores.numpy()[sentence, rank], score, atol=1e-4)


def test_cross_attention_plot(trained, tmp_path):
    from keras_seq2seq.visualize import cross_attention_map, plot_cross_attention

    model, source_tokenizer, target_tokenizer = trained
    source_pieces, target_pieces, weights = cross_attention_map(
        model, source_tokenizer, target_tokenizer, "Je suis étudiant."
    )
    assert weights.shape == (len(target_pieces), len(source_pieces))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert target_pieces[-1] == "[END]"
    translation = plot_cross_attention(
        model, source_tokenizer, target_tokenizer, "Je suis étudiant.", tmp_path / "attention.png"
    )
    assert translation == "I am a student."
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampling_is_seeded_and_respects_top_k(trained):
    from keras_seq2seq.decoding import sample_decode

    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Il est là, je crois ?"] * 4)
    first, _ = sample_decode(model, source, temperature=1.5, seed=11)
    again, _ = sample_decode(model, source, temperature=1.5, seed=11)
    other, _ = sample_decode(model, source, temperature=1.5, seed=12)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert first.shape != other.shape or (first.numpy() != other.numpy()).any()
    # top_k=1 (or a tiny nucleus) leaves only the best token: greedy.
    greedy, _ = greedy_decode(model, source)
    for kwargs in ({"top_k": 1}, {"top_p": 1e-6}):
        sampled, _ = sample_decode(model, source, temperature=3.0, seed=5, **kwargs)
        np.testing.assert_array_equal(sampled.numpy(), greedy.numpy())


def test_sampling_arguments_are_checked(trained):
    from keras_seq2seq.decoding import sample_decode

    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Va !"])
    with pytest.raises(ValueError, match="temperature=0"):
        sample_decode(model, source, temperature=0)
    with pytest.raises(ValueError, match="top_k=-1"):
        sample_decode(model, source, top_k=-1)
    with pytest.raises(ValueError, match="top_p=1.5"):
        sample_decode(model, source, top_p=1.5)


def test_forced_long_output_crosses_cache_blocks_like_teacher_forcing(trained):
    """60 tokens run through the 16-, 32- and 64-position cache blocks; every token must
    be the argmax of the full (uncached) decoder fed the tokens before it."""
    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Va !"])
    token_ids, _ = greedy_decode(model, source, max_output_length=60, suppress_end=True)
    assert token_ids.shape == (2, 60)
    target_in = tf.concat([tf.fill([2, 1], START_ID), token_ids[:, :-1]], axis=1)
    logits = model((source, target_in)).numpy()
    logits[..., END_ID] = -np.inf
    np.testing.assert_array_equal(logits.argmax(-1), token_ids.numpy())


@pytest.mark.parametrize("search", ["greedy", "beam", "sample"])
def test_a_search_run_block_by_block_equals_the_whole_search(trained, search):
    """Each `LoopPart` runs one cache block, from the state the part before returned; the chain
    gives the whole search's outputs, and says the loop goes on exactly while it has steps left."""
    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Je suis étudiant.", "Va !"])
    run = {
        "greedy": lambda **kw: greedy_decode(model, source, max_output_length=40, **kw),
        "beam": lambda **kw: beam_search(model, source, beam_size=3, max_output_length=40, **kw),
        "sample": lambda **kw: sample_decode(model, source, temperature=2.0, seed=7, max_output_length=40, **kw),
    }[search]
    for options in ({"suppress_end": True}, {}) if search != "sample" else ({},):
        whole = run(static_shapes=True, **options)
        sizes, block, state, parts = cache_block_sizes(40), 0, None, []
        while True:
            part = run(static_shapes=True, part=LoopPart(block, state), **options)
            parts.append(bool(part.running))
            cache_keys = part.state.cache[0][0]
            assert cache_keys.shape[-2] == sizes[block] * (3 if search == "beam" else 1)
            if not part.running or block == len(sizes) - 1:
                break
            block, state = block + 1, part.state
        for got, expected in zip(part.outputs, whole):
            np.testing.assert_array_equal(got.numpy(), expected.numpy())
        if options:  # 40 tokens forced: blocks of 16, 32 and 48 positions, the last one ending the loop
            assert parts == [True, True, False]
        else:  # the memorised pairs end within the first block
            assert parts == [False]


def test_cache_block_sizes_double_up_to_the_output_length():
    assert cache_block_sizes(10) == [16]
    assert cache_block_sizes(127) == [16, 32, 64, 128]
    assert cache_block_sizes(255) == [16, 32, 64, 128, 256]
    assert cache_block_sizes(40) == [16, 32, 48]


def test_translator_xla_buckets_match_plain_graph_and_single_sentences(trained):
    model, source_tokenizer, target_tokenizer = trained
    compiled = Translator(model, source_tokenizer, target_tokenizer)
    plain = Translator(model, source_tokenizer, target_tokenizer, jit_compile=False)
    # Batch buckets 4 (the three sentences) and 1 (each alone); 16 and 32 are in the tests below.
    for sentences in [["Je suis étudiant.", "Va !", "Il est là, je crois ?"]]:
        text = tf.constant(sentences)
        with_xla, without = compiled.translate(text), plain.translate(text)
        assert list(with_xla["translation"].numpy()) == list(without["translation"].numpy())
        np.testing.assert_allclose(with_xla["score"].numpy(), without["score"].numpy(), atol=1e-3)
        beams = compiled.translate_beam(text)["n_best"].numpy()
        np.testing.assert_array_equal(beams, plain.translate_beam(text)["n_best"].numpy())
        for index, sentence in enumerate(sentences):
            alone = compiled.translate(tf.constant([sentence]))["translation"].numpy()[0]
            assert alone == with_xla["translation"].numpy()[index]


def test_large_batches_encoded_on_real_tokens_keep_every_sentence_in_place(trained):
    """More than 16 sentences of mixed lengths: encoded on their real tokens, returned in input order."""
    model, source_tokenizer, target_tokenizer = trained
    translator = Translator(model, source_tokenizer, target_tokenizer)
    words = "je suis étudiant il est là et elle aussi mais pas nous".split()
    # Lengths 1 to 48 words in no order; every fifth sentence repeated four times over.
    repeats = [1 + (index % 5 == 0) * 3 for index in range(37)]
    sentences = [" ".join(words[: 1 + (7 * i) % len(words)] * repeats[i]) + "." for i in range(37)]
    text = tf.constant(sentences)
    source_ids = translator.tokenize_source(text)["token_ids"]
    lengths = tf.reduce_sum(tf.cast(source_ids > 0, tf.int32), axis=1).numpy()
    assert lengths.max() > 16 >= np.sort(lengths)[15]  # mostly padding, unsorted input
    assert not (np.diff(lengths) >= 0).all()

    expected_ids, expected_scores = greedy_decode(model, source_ids)
    result = translator.translate(text)
    expected = translator.detokenize(expected_ids).numpy()
    assert list(result["translation"].numpy()) == list(expected)
    np.testing.assert_allclose(result["score"].numpy(), expected_scores.numpy(), atol=1e-3)

    beam_ids, beam_scores = beam_search(model, source_ids, beam_size=4)
    beams = translator.translate_beam(text)
    np.testing.assert_allclose(beams["scores"].numpy(), beam_scores.numpy(), atol=1e-3)
    assert list(beams["translation"].numpy()) == list(translator.detokenize(beam_ids[:, 0]).numpy())


@pytest.mark.parametrize(
    "shape, bucket", [((1, 1), (1, 16)), ((3, 7), (4, 16)), ((64, 16), (64, 16)), ((65, 17), (128, 32))]
)
def test_batches_are_padded_to_their_bucket(shape, bucket):
    ids = tf.ones(shape, tf.int32)
    padded = _bucketed_batch(ids)
    assert tuple(padded.shape) == bucket
    assert int(tf.reduce_sum(padded)) == shape[0] * shape[1]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_blocked_top_k_equals_top_k_ties_included(jit_compile):
    from keras_seq2seq.decoding import blocked_top_k

    rng = np.random.default_rng(0)
    top_k = tf.function(lambda values: tf.math.top_k(values, 4), jit_compile=jit_compile)
    blocked = tf.function(lambda values: blocked_top_k(values, 4, block=16), jit_compile=jit_compile)
    for values in (
        rng.normal(size=(5, 1000)),
        rng.integers(0, 3, size=(5, 999)),  # ties everywhere
        rng.integers(0, 3, size=(5, 997)),  # a prime size: a padded last block
        np.where(rng.random((5, 1000)) < 0.99, -1e9, rng.normal(size=(5, 1000))),  # beam search's masked scores
        np.full((2, 100), -1e9),
    ):
        values = tf.constant(values, tf.float32)
        expected, got = top_k(values), blocked(values)
        np.testing.assert_array_equal(got[0].numpy(), expected[0].numpy())
        np.testing.assert_array_equal(got[1].numpy(), expected[1].numpy())


def test_translator_step_copies_are_a_snapshot_of_the_weights(trained):
    """The Translator's StepWeights are taken when it is built: after the weights change, it translates
    as before, a new Translator (or one built with step_copies=False) as the changed model does."""
    model, source_tokenizer, target_tokenizer = trained
    # The tiny preset has separate output weights: a tied model (random weights) of the same size.
    copy = Seq2SeqTransformer.from_config({**model.get_config(), "tie_embeddings": True})
    copy.build()
    translator = Translator(copy, source_tokenizer, target_tokenizer)
    following = Translator(copy, source_tokenizer, target_tokenizer, step_copies=False)
    embedding = copy.decoder.embedding.embeddings
    np.testing.assert_array_equal(translator.step_weights.output_kernel.numpy(), embedding.numpy().T)
    assert following.step_weights is None
    text = tf.constant(["Je suis étudiant.", "Il est là, je crois ?"])
    before = translator.translate(text)
    np.testing.assert_allclose(following.translate(text)["score"].numpy(), before["score"].numpy(), atol=1e-4)

    output_layer = copy.decoder.blocks[0].feed_forward._output_dense.kernel
    output_layer.assign(output_layer * 0.5)
    # Only the decoder's step matrices change: the encoder, which reads the layers, is unaffected.
    stale = translator.translate(text)
    np.testing.assert_array_equal(stale["score"].numpy(), before["score"].numpy())
    fresh = Translator(copy, source_tokenizer, target_tokenizer).translate(text)
    assert np.abs(fresh["score"].numpy() - before["score"].numpy()).max() > 1e-3
    np.testing.assert_allclose(following.translate(text)["score"].numpy(), fresh["score"].numpy(), atol=1e-4)
    expected, expected_scores = greedy_decode(copy, translator.tokenize_source(text)["token_ids"])
    np.testing.assert_allclose(fresh["score"].numpy(), expected_scores.numpy(), atol=1e-4)


def test_one_call_and_real_token_paths_translate_alike(trained):
    """16 sentences take the one-call path, 17 the encoder on real tokens: the 16 shared ones come out the same."""
    model, source_tokenizer, target_tokenizer = trained
    translator = Translator(model, source_tokenizer, target_tokenizer)
    words = "je suis étudiant il est là et elle aussi".split()
    sentences = [" ".join(words[: 1 + (5 * i) % len(words)]) + " ." for i in range(17)]
    small, large = tf.constant(sentences[:16]), tf.constant(sentences)
    for signature in (translator.translate, translator.translate_beam):
        one_call, tokens = signature(small), signature(large)
        assert list(one_call["translation"].numpy()) == list(tokens["translation"].numpy()[:16])
    sampled = [
        translator.translate_sample(text, 1.0, 0, 1.0, 7)["translation"].numpy() for text in (small, small)
    ]
    assert list(sampled[0]) == list(sampled[1])


def test_bucketed_token_count_rounds_up_to_64_or_an_eighth():
    from keras_seq2seq.decoding.xla_cpu import bucketed_token_count

    counts = [1, 63, 64, 65, 511, 512, 513, 639, 1000, 1025, 5000]
    assert [int(bucketed_token_count(tf.constant(n))) for n in counts] == [
        64, 64, 64, 128, 512, 512, 576, 640, 1024, 1152, 5120
    ]
    for n in range(1, 3000, 7):
        bucket = int(bucketed_token_count(tf.constant(n)))
        assert n <= bucket < n + max(64, n / 8)


def test_encoding_real_tokens_only_gives_the_same_keys_and_values(trained):
    """`encode_tokens_for_decoding` (bucketed positions, spare row) against the step's `encode`."""
    from keras_seq2seq.decoding import DecodingStep
    from keras_seq2seq.decoding.xla_cpu import encode_tokens_for_decoding, token_positions

    model, source_tokenizer, _ = trained
    source_ids = tf.ragged.constant(
        source_tokenizer(["je suis étudiant .", "va !", "il est là et elle aussi mais pas nous ."]), tf.int32
    ).to_tensor()
    positions = token_positions(source_ids, bucketed=True)
    real = int(tf.reduce_sum(tf.cast(source_ids != 0, tf.int32)))
    assert positions.shape == (64, 2) and real < 64
    np.testing.assert_array_equal(positions[real:].numpy(), [[3, 0]] * (64 - real))  # the spare row
    expected, expected_mask = DecodingStep(model).encode(source_ids)
    for compiled in (False, True):
        encode = tf.function(lambda i, p: encode_tokens_for_decoding(model, i, p), jit_compile=compiled)
        key_values, mask = encode(source_ids, positions)
        np.testing.assert_array_equal(mask.numpy(), expected_mask.numpy())
        visible = expected_mask.numpy()[:, None, :, None]
        for block, expected_block in zip(key_values, expected):
            for part, expected_part in zip(block, expected_block):
                assert part.shape == expected_part.shape
                np.testing.assert_allclose(part.numpy() * visible, expected_part.numpy() * visible, atol=1e-4)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("excluded", [None, 3, 7])
def test_top_log_probabilities_equal_the_top_of_log_softmax(jit_compile, excluded):
    from keras_seq2seq.decoding import blocked_top_k, top_log_probabilities

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 8000)).astype("float32") * 4
    logits[:, 7] = 30.0  # token 7 is every row's best (the excluded one, in one case)
    logits[2, 100:104] = 25.0  # ties
    run = tf.function(lambda values: top_log_probabilities(values, 4, excluded), jit_compile=jit_compile)
    values, ids, log_sum_exp = run(tf.constant(logits))
    log_probabilities = tf.nn.log_softmax(logits)
    masked = log_probabilities if excluded is None else log_probabilities + tf.one_hot(excluded, 8000, -1e9, 0.0)
    expected_values, expected_ids = blocked_top_k(masked, 4)
    np.testing.assert_array_equal(ids.numpy(), expected_ids.numpy())
    np.testing.assert_allclose(values.numpy(), expected_values.numpy(), atol=1e-5)
    np.testing.assert_allclose(log_sum_exp.numpy(), tf.reduce_logsumexp(logits, axis=-1).numpy(), rtol=1e-6)
    if excluded is not None:
        assert not (ids.numpy() == excluded).any()


def _teacher_forced_log_probability(model, source_row, tokens):
    """log P(tokens | source) summed over the tokens, from one full (uncached) decoder pass."""
    target_in = tf.constant([[START_ID, *tokens[:-1]]])
    logits = model((tf.constant([source_row]), target_in))[0]
    log_probabilities = tf.nn.log_softmax(logits).numpy()
    return float(sum(log_probabilities[position, token] for position, token in enumerate(tokens)))


def test_beam_scores_are_log_probabilities_over_the_gnmt_penalty(trained):
    """score = log P(hypothesis) / ((5 + length) / 6) ** alpha, length counting [END]; best first."""
    model, source_tokenizer, _ = trained
    source = _source_batch(source_tokenizer, ["Il est là, je crois ?", "Va !"])
    alpha = 0.6
    beams, scores = beam_search(model, source, beam_size=3, length_penalty=alpha)
    for sentence, source_row in enumerate(source.numpy()):
        row_scores = scores.numpy()[sentence]
        assert list(row_scores) == sorted(row_scores, reverse=True)
        for rank, hypothesis in enumerate(beams.numpy()[sentence]):
            tokens = [int(token) for token in hypothesis if token != 0]
            assert tokens[-1] == END_ID
            expected = _teacher_forced_log_probability(model, source_row, tokens) / ((5 + len(tokens)) / 6) ** alpha
            np.testing.assert_allclose(row_scores[rank], expected, rtol=1e-4, atol=1e-4)


def _never_ending_model():
    """A tiny untrained model whose output bias makes [END] cost 1000 nats: every output runs to its limit."""
    model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=40, target_vocab_size=30)
    model.build()
    kernel, bias = model.decoder.output_projection.get_weights()
    bias[END_ID] = -1000.0
    model.decoder.output_projection.set_weights([kernel, bias])
    return model


def test_the_length_limit_binds_and_its_end_is_paid_for():
    """Sources of 1 and 4 tokens: outputs of exactly 1.5 x length + 10 tokens (11 and 16), the last
    one a forced [END] whose log-probability counts in the score; a lower overall cap wins."""
    model = _never_ending_model()
    source = tf.constant([[5, 0, 0, 0], [5, 6, 7, 8]])
    greedy, greedy_scores = greedy_decode(model, source, max_output_length=40)
    beams, beam_scores = beam_search(model, source, beam_size=3, length_penalty=0.0, max_output_length=40)
    for sentence, limit in enumerate((11, 16)):
        tokens = [int(token) for token in greedy.numpy()[sentence] if token != 0]
        assert len(tokens) == limit and tokens[-1] == END_ID and END_ID not in tokens[:-1]
        expected = _teacher_forced_log_probability(model, source.numpy()[sentence], tokens)
        assert expected < -900  # the forced [END] is paid for
        np.testing.assert_allclose(greedy_scores.numpy()[sentence], expected, rtol=1e-5)
        for rank, hypothesis in enumerate(beams.numpy()[sentence]):
            tokens = [int(token) for token in hypothesis if token != 0]
            assert len(tokens) == limit and tokens[-1] == END_ID
            expected = _teacher_forced_log_probability(model, source.numpy()[sentence], tokens)
            np.testing.assert_allclose(beam_scores.numpy()[sentence, rank], expected, rtol=1e-5)
    capped, _ = greedy_decode(model, source, max_output_length=13)
    assert [int((row != 0).sum()) for row in capped.numpy()] == [11, 13]
