"""The pooled log-mel softmax-regression baseline: the fit reaches the optimum of its convex
objective (gradient checked by finite differences, not by the fitted code's own formula),
pooling does not depend on batching or padding, and l2 is chosen by validation accuracy."""
import numpy as np
import scipy.optimize

from grux.tasks.speech.features import FeatureSpec
from grux.tasks.speech.pooled_baseline import (SoftmaxRegression, pooled_baseline,
                                               pooled_statistics)


def objective(w, z, y, l2):
    """Mean cross-entropy + l2/2 |W|^2 (bias row unpenalised), written independently."""
    logits = z @ w
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    return -logp[np.arange(len(y)), y].mean() + 0.5 * l2 * (w[:-1] ** 2).sum()


def test_fit_is_the_regularised_optimum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)) * [1, 2, 3, 4, 5] + 7
    y = rng.integers(0, 3, 120)
    model = SoftmaxRegression(l2=0.1).fit(x, y, 3)
    z = np.hstack([(x - model.mean) / model.scale, np.ones((120, 1))])
    f = lambda flat: objective(flat.reshape(6, 3), z, y, 0.1)  # noqa: E731
    grad = scipy.optimize.approx_fprime(model.weights.ravel(), f, 1e-6)
    assert np.abs(grad).max() < 1e-4
    worse = model.weights + 0.01 * rng.normal(size=model.weights.shape)
    assert f(model.weights.ravel()) < f(worse.ravel())


def test_pooled_statistics_do_not_depend_on_batching():
    rng = np.random.default_rng(1)
    audio = [(rng.normal(size=n) * 3000).astype(np.int16) for n in (1234, 4000, 2500, 800)]
    spec = FeatureSpec()
    together = pooled_statistics(audio, spec, batch=4)
    alone = np.concatenate([pooled_statistics([a], spec) for a in audio])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)
    assert together.shape == (4, 80) and np.all(together[:, 40:] > 0)


def test_l2_is_chosen_on_validation():
    """Two tone frequencies per class; the chosen l2 is the candidate with the best
    validation accuracy (brute force over the candidates), and separable classes are
    recognised."""
    rng = np.random.default_rng(2)
    t = np.arange(4000) / 8000

    def recordings(n):
        out = []
        for i in range(n):
            label = i % 10
            f = 300 + 250 * label + rng.normal() * 20
            out.append({"audio": (8000 * np.sin(2 * np.pi * f * t) + rng.normal(size=t.size)
                                  * 300).astype(np.int16), "label": label})
        return out

    splits = {"train": recordings(60), "validation": recordings(20), "test": recordings(20)}
    spec = FeatureSpec()
    out = pooled_baseline(splits, spec, l2s=(1e-3, 10.0))
    xs = {k: pooled_statistics([e["audio"] for e in v], spec) for k, v in splits.items()}
    ys = {k: np.array([e["label"] for e in v]) for k, v in splits.items()}
    vals = {l2: np.mean(SoftmaxRegression(l2).fit(xs["train"], ys["train"], 10)
                        .predict(xs["validation"]) == ys["validation"]) for l2 in (1e-3, 10.0)}
    assert out["validation"] == max(vals.values()) and vals[out["l2"]] == out["validation"]
    assert out["test"] == 1.0 and out["parameters"] == 81 * 10
