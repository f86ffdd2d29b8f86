"""Multi30K (Elliott et al. 2016, 2017): Flickr30k/MSCOCO captions in English, German, French.

Each example is one aligned line: features ``en``, ``de``, ``fr`` (untokenized UTF-8 str,
exactly as in the files, surrounding spaces included).
Splits (lines): ``train`` 29,000, ``validation`` 1,014, ``test_2016_flickr`` 1,000,
``test_2017_flickr`` 1,000, ``test_2017_mscoco`` 461, ``test_2018_flickr`` 1,071, and
``test`` = ``test_2016_flickr`` (the usual Multi30k test set).
"""
from __future__ import annotations

import tensorflow_datasets as tfds

from grux.data.builders.common import GruxBuilder, SourceFile, github_raw, read_lines

LANGUAGES = ("en", "de", "fr")
# split -> file prefix in data/task1/raw/
FILES = {"train": "train", "validation": "val", "test_2016_flickr": "test_2016_flickr",
         "test_2017_flickr": "test_2017_flickr", "test_2017_mscoco": "test_2017_mscoco",
         "test_2018_flickr": "test_2018_flickr"}
TEST_ALIAS = ("test", "test_2016_flickr")
_REPO = ("multi30k/dataset", "a3d2e0d26b56f3846f66a952536ffed4e401d05a")
_SHA256 = {
    "train.en": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.en": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.en": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2017_flickr.en": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.fr": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.en": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.fr": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
    "test_2018_flickr.en": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.de": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
    "test_2018_flickr.fr": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
}
SOURCES = {stem: SourceFile(f"multi30k/{stem}.gz", sha,
                            github_raw(*_REPO, f"data/task1/raw/{stem}.gz"))
           for stem, sha in _SHA256.items()}


class Multi30k(GruxBuilder, skip_registration=True):
    """Multi30k En/De/Fr aligned captions; see the module docstring."""

    name = "multi30k"
    SOURCES = SOURCES
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/multi30k/dataset"
    CITATION = ("Elliott et al. 2016, Multi30K: multilingual English-German image "
                "descriptions; Elliott et al. 2017, Findings of the second shared task on "
                "multimodal machine translation and multilingual image description")

    def features(self):
        return tfds.features.FeaturesDict({lang: tfds.features.Text() for lang in LANGUAGES})

    def split_examples(self, paths):
        out = {}
        for split, prefix in FILES.items():
            texts = {lang: read_lines(paths[f"{prefix}.{lang}"], strip=False)
                     for lang in LANGUAGES}
            if len({len(t) for t in texts.values()}) != 1:
                raise ValueError(f"multi30k {prefix}: line counts differ between languages: "
                                 f"{ {lang: len(t) for lang, t in texts.items()} }")
            out[split] = [dict(zip(LANGUAGES, line)) for line in zip(*texts.values())]
        out[TEST_ALIAS[0]] = out[TEST_ALIAS[1]]
        return out
