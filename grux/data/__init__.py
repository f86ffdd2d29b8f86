"""Datasets: synthetic generators (embedded, no download) and, later, TFDS builders."""
from grux.data.synthetic import adding_problem

__all__ = ["adding_problem"]
