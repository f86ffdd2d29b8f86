"""Synthetic data that needs no files: copy task layout, toy text corpus."""
import numpy as np

from grux.data.synthetic import synthetic_text


def test_copy_problem_layout_and_task_baseline():
    from grux.data.synthetic import copy_problem
    x, y = copy_problem(np.random.default_rng(0), 3, delay=5, symbols=4, length=3)
    assert x.shape == y.shape == (3, 11)
    np.testing.assert_array_equal(y[:, -3:], x[:, :3])       # recall the data symbols
    assert (x[:, 7] == 5).all() and (x[:, 3:7] == 0).all() and (y[:, :-3] == 0).all()
    assert set(np.unique(x[:, :3])) <= {1, 2, 3, 4}


def test_synthetic_text_is_deterministic_and_learnable():
    a, b = synthetic_text(0, 50), synthetic_text(0, 50)
    assert a == b and synthetic_text(1, 50) != a
    words = [w for line in a for w in line.split()]
    pairs = set(zip(words, words[1:]))
    assert len(pairs) < 0.4 * len(set(words)) ** 2  # a sparse chain, not uniform text
