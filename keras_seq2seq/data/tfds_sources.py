"""Corpora through tensorflow-datasets: a builder for Tatoeba pair files, and catalog datasets.

`TatoebaPairs` reads manythings/Tatoeba files (`English<TAB>Other<TAB>attribution`) for
any language, from a manual directory (or an explicit path) holding either split files
(`train.txt`, `dev.txt`, optionally `test.txt`) or one whole-corpus file (`fra.txt` or
the original `fra-eng.zip`), which is then split so no sentence crosses splits:

    builder = TatoebaPairs(config="fra", data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="../shared/data/tatoeba-fr-en"))
    train = builder.as_dataset(split="train")      # {"en": ..., "fr": ..., "attribution": ...}

Lines are cleaned and checked like everywhere in the project (`corpora.py`): bad ones
are skipped, counted and logged with their first line numbers.
"""

import logging
import tempfile
from pathlib import Path

import tensorflow_datasets as tfds

from keras_seq2seq.data import corpora
from keras_seq2seq.data.fetch import ATTRIBUTION, split_pair_file

# Tatoeba/manythings file names use ISO 639-3 codes; the features use the short codes.
LANGUAGES = {"fra": "fr", "spa": "es", "deu": "de", "ita": "it", "por": "pt", "nld": "nl", "rus": "ru"}
logger = logging.getLogger(__name__)


class TatoebaConfig(tfds.core.BuilderConfig):
    def __init__(self, language, **kwargs):
        super().__init__(name=language, description=f"English-{language} Tatoeba pairs", **kwargs)
        self.language = language
        self.short_code = LANGUAGES.get(language, language)


class TatoebaPairs(tfds.core.GeneratorBasedBuilder):
    """Tatoeba sentence pairs from manythings.org/anki files, one config per language."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [TatoebaConfig(language) for language in LANGUAGES]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put train.txt/dev.txt(/test.txt), or the whole LANG.txt or LANG-eng.zip from "
        "manythings.org/anki, in the manual directory. `keras-seq2seq` fetches fra-eng.zip "
        "itself (keras_seq2seq.data.fetch)."
    )

    def _info(self):
        short = self.builder_config.short_code
        return self.dataset_info_from_configs(
            description="Tatoeba sentence pairs as packaged by manythings.org/anki.",
            features=tfds.features.FeaturesDict(
                {"en": tfds.features.Text(), short: tfds.features.Text(), "attribution": tfds.features.Text()}
            ),
            supervised_keys=(short, "en"),
            homepage="https://www.manythings.org/anki/",
            citation=ATTRIBUTION,
            license="CC-BY 2.0 (France)",
        )

    def _split_files(self, manual_dir):
        manual_dir = Path(manual_dir)
        if (manual_dir / "train.txt").exists():
            names = ("train", "dev", "test")
            return {name: manual_dir / f"{name}.txt" for name in names if (manual_dir / f"{name}.txt").exists()}
        language = self.builder_config.language
        for candidate in (f"{language}.txt", f"{language}-eng.zip"):
            if (manual_dir / candidate).exists():
                split_dir = Path(tempfile.mkdtemp(prefix="tatoeba_split_"))
                split_pair_file(manual_dir / candidate, split_dir)
                return {name: split_dir / f"{name}.txt" for name in ("train", "dev", "test")}
        raise FileNotFoundError(
            f"{manual_dir} holds neither train.txt nor {language}.txt / {language}-eng.zip"
        )

    def _split_generators(self, dl_manager):
        files = self._split_files(dl_manager.manual_dir)
        return {name: self._generate_examples(path) for name, path in files.items()}

    def _generate_examples(self, path):
        short = self.builder_config.short_code
        triples, report = corpora.read_columns(path, 0, 1, extra_columns=(2,))
        logger.warning(report.summary())
        for index, (english, other, attribution) in enumerate(triples):
            yield index, {"en": english, short: other, "attribution": attribution}


def load_tfds_pairs(corpus):
    """(train_pairs, dev_pairs) of `(source, target)` strings from a TFDS dataset (`corpus.kind: tfds`).

    `corpus.tfds_name` is any catalog translation dataset ("wmt14_translate/fr-en",
    "ted_hrlr_translate/pt_to_en", ...) or "tatoeba_pairs/fra" for the local builder,
    whose manual directory is `corpus.train`'s folder.
    """
    builder = tfds_builder(corpus.tfds_name)
    download_config = None
    if corpus.tfds_name.startswith("tatoeba_pairs"):
        download_config = tfds.download.DownloadConfig(manual_dir=str(Path(corpus.train)))
    builder.download_and_prepare(download_config=download_config)
    pairs = {}
    for name, split in (("train", corpus.train_split), ("dev", corpus.dev_split)):
        examples = tfds.as_numpy(builder.as_dataset(split=split))
        pairs[name] = [
            (
                corpora.normalize_text(example[corpus.source_language].decode("utf-8", "replace")),
                corpora.normalize_text(example[corpus.target_language].decode("utf-8", "replace")),
            )
            for example in examples
        ]
    train = pairs["train"][: corpus.limit] if corpus.limit else pairs["train"]
    return train, pairs["dev"]


def tfds_builder(name, data_dir=None):
    """The TFDS builder for `name`, the local Tatoeba builder included (no download happens here)."""
    if name.startswith("tatoeba_pairs"):
        language = name.split("/", 1)[1] if "/" in name else "fra"
        return TatoebaPairs(config=language, data_dir=data_dir)
    return tfds.builder(name, data_dir=data_dir)
