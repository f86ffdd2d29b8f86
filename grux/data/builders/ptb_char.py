"""Penn Treebank, character level (Mikolov et al. 2012, ``ptb.char.*.txt``).

Examples: one per line of ``ptb.char.{train,valid,test}.txt``, in file order, feature
``text`` (str): the line's symbols separated by single spaces, surrounding whitespace
removed, e.g. ``"a e r _ b a n k n o t e"``. Symbols are single characters; ``_`` separates
words and ``<unk>`` is spelled ``< u n k >``. Line ``i`` is PTB word line ``i`` with its
words joined by ``_``, so the line counts equal the word level's (42,068 / 3,370 / 3,761).
The lone space after a file's last newline is not a line (a plain ``for line in f`` parse
would add one empty line there). 49 distinct symbols (incl. ``_``), 50 with end-of-line.
"""
from __future__ import annotations

from grux.data.builders.common import SourceFile, github_raw
from grux.data.builders.ptb import Ptb

_DEHGAN = ("arthurdehgan/IFT6135_assignment_2", "191820cabc95c8d8af11d0bf3679207dd3b97e08")

SOURCES = {
    # Stored locally as gzip -9 -n of the original file (git blob
    # 84b890a87aed6ad2989aa12d03f1129c41d727b2); the URL serves the uncompressed original.
    "train": SourceFile(
        "ptb_char/ptb.char.train.txt.gz",
        "bfe1c3eda8bcc757be2e685093d94ae9610ec4e062d50efed2444f1421577dc8",
        github_raw(*_DEHGAN, "data/ptb.char.train.txt"),
        url_sha256="e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9"),
    "validation": SourceFile(
        "ptb_char/ptb.char.valid.txt",
        "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
        github_raw(*_DEHGAN, "data/ptb.char.valid.txt")),
    "test": SourceFile(
        "ptb_char/ptb.char.test.txt",
        "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
        github_raw(*_DEHGAN, "data/ptb.char.test.txt")),
}


class PtbChar(Ptb, skip_registration=True):
    """PTB character level: the word-level builder's layout with the char files."""

    name = "ptb_char"
    DESCRIPTION = __doc__
    SOURCES = SOURCES
    HOMEPAGE = "https://www.fit.vutbr.cz/~imikolov/rnnlm/"
    CITATION = "Mikolov et al. 2012, Subword language modeling with neural networks"
