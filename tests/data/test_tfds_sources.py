import zipfile
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from keras_seq2seq.data.corpora import read_tatoeba
from keras_seq2seq.data.tfds_sources import TatoebaPairs, load_tfds_pairs, tfds_builder
from keras_seq2seq.run_config import load_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tatoeba-sample.txt"


def _split_fixture(manual, train_lines, bad_dev_line=""):
    """The ../shared layout (train.txt, dev.txt) made from the fixture."""
    manual.mkdir()
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    (manual / "train.txt").write_text("\n".join(lines[:train_lines]) + "\n", encoding="utf-8")
    (manual / "dev.txt").write_text("\n".join(lines[train_lines:]) + "\n" + bad_dev_line, encoding="utf-8")
    return manual


def _prepare(tmp_path, manual_dir):
    builder = TatoebaPairs(config="fra", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_builder_reads_train_and_dev_files(tmp_path):
    manual = _split_fixture(tmp_path / "manual", 300, bad_dev_line="no tab here\n")
    builder = _prepare(tmp_path, manual)
    assert builder.info.splits["train"].num_examples == 300
    assert builder.info.splits["dev"].num_examples == 100  # the bad line is skipped (and logged)
    examples = {
        (e["fr"].decode(), e["en"].decode()): e["attribution"].decode()
        for e in tfds.as_numpy(builder.as_dataset(split="train"))
    }
    assert ("Je suis étudiant.", "I am a student.") in examples
    assert all(attribution.startswith("CC-BY 2.0 (France)") for attribution in examples.values())
    assert builder.info.supervised_keys == ("fr", "en")


def test_builder_splits_a_whole_corpus_zip_without_shared_sentences(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / "fra-eng.zip", "w") as archive:
        archive.write(FIXTURE, "fra.txt")
    builder = _prepare(tmp_path, manual)
    splits = {
        name: [(e["en"], e["fr"]) for e in tfds.as_numpy(builder.as_dataset(split=name))]
        for name in ("train", "dev", "test")
    }
    assert sum(map(len, splits.values())) == 400
    for side in (0, 1):
        train_side = {pair[side] for pair in splits["train"]}
        assert not train_side & {pair[side] for pair in splits["dev"] + splits["test"]}


def test_train_and_dev_files_load_through_a_tfds_config(tmp_path):
    # The layout of ../shared/data/tatoeba-fr-en (a fixture: the real files take a minute).
    manual = _split_fixture(tmp_path / "manual", 350)
    config = load_config(None, [
        "corpus.kind=tfds", "corpus.tfds_name=tatoeba_pairs/fra", f"corpus.train={manual}",
        "corpus.source_language=fr", "corpus.target_language=en", "corpus.dev_split=dev",
    ])
    import keras_seq2seq.data.tfds_sources as sources

    original = sources.tfds_builder
    sources.tfds_builder = lambda name: original(name, data_dir=str(tmp_path / "tfds"))
    try:
        train, dev = load_tfds_pairs(config.corpus)
    finally:
        sources.tfds_builder = original
    assert sorted(dev) == sorted(read_tatoeba(manual / "dev.txt")[0])
    assert len(train) == len(read_tatoeba(manual / "train.txt")[0])


@pytest.mark.parametrize(
    "name, languages",
    [("ted_hrlr_translate/pt_to_en", {"pt", "en"}), ("wmt14_translate/fr-en", {"fr", "en"})],
)
def test_catalog_translation_datasets_resolve_without_download(tmp_path, name, languages):
    builder = tfds_builder(name, data_dir=str(tmp_path))
    assert set(builder.info.features.keys()) == languages
