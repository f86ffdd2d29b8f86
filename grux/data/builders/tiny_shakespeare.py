"""Tiny Shakespeare (Karpathy 2015, char-rnn): 1,115,394 ASCII characters, 65 distinct.

Split by characters (integer borders, N = 1,115,394): ``train`` = ``[0, N*90//100)`` =
first 1,003,854 chars, ``validation`` = ``[N*90//100, N*95//100)`` = next 55,770,
``test`` = ``[N*95//100, N)`` = last 55,770. Each split is one example with feature ``text``
(str); the three texts concatenate to the file exactly.
"""
from __future__ import annotations

from grux.data.builders.common import (GruxBuilder, SourceFile, github_raw, read_text,
                                      text_features)

SOURCES = {
    "text": SourceFile(
        "tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        github_raw("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e",
                   "data/tinyshakespeare/input.txt")),
}

# Split borders as fractions (in percent) of the character count.
SPLIT_PERCENT = {"train": (0, 90), "validation": (90, 95), "test": (95, 100)}


def split_borders(n: int) -> dict[str, tuple[int, int]]:
    """``{split: (start, stop)}`` character borders for a text of ``n`` characters."""
    return {s: (n * a // 100, n * b // 100) for s, (a, b) in SPLIT_PERCENT.items()}


class TinyShakespeare(GruxBuilder, skip_registration=True):
    """Tiny Shakespeare, 90/5/5 % character split; see the module docstring."""

    name = "tiny_shakespeare"
    DESCRIPTION = __doc__
    SOURCES = SOURCES
    HOMEPAGE = "https://github.com/karpathy/char-rnn"
    CITATION = "Karpathy 2015, The unreasonable effectiveness of recurrent neural networks"

    def features(self):
        return text_features()

    def split_examples(self, paths):
        text = read_text(paths["text"])
        return {s: [{"text": text[a:b]}] for s, (a, b) in split_borders(len(text)).items()}
