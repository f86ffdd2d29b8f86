"""Datasets: TFDS builders for the real corpora (``grux.data.datasets``, ``grux-data``),
resumable batch streams (``grux.data.stream``) and synthetic generators (no download)."""
from grux.data.synthetic import adding_problem

__all__ = ["adding_problem"]
