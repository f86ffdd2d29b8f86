"""The reference point for isolated-word recognition: multinomial logistic (softmax)
regression on utterance-pooled log-mel statistics.

Each recording becomes one vector: the mean and the standard deviation over its frames of
each bin of the log-mel features (:func:`~grux.tasks.speech.features.log_mel` without
per-utterance normalisation, same window, hop and bins as the recurrent model), ``2·M``
numbers. Features are standardised with the training set's statistics and the regression is
fitted by L-BFGS on the mean cross-entropy plus ``l2/2·‖W‖²`` (biases unpenalised), a
convex problem with one optimum, so the number depends on nothing but the data and ``l2``.
It ignores the order of frames entirely: what a recurrent model scores above it is what the
temporal structure of the words is worth.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from grux.tasks.speech.features import FeatureSpec, log_mel


def pooled_statistics(audio: list[np.ndarray], spec: FeatureSpec,
                      batch: int = 64) -> np.ndarray:
    """``(len(audio), 2·mel_bins)``: each bin's mean and standard deviation over the frames
    of each recording's log-mel features (not normalised per utterance)."""
    spec = dataclasses.replace(spec, normalize="none")
    fn = jax.jit(lambda a, n: log_mel(a, n, spec))
    out = np.zeros((len(audio), 2 * spec.mel_bins), np.float64)
    for lo in range(0, len(audio), batch):
        rows = audio[lo:lo + batch]
        width = max(len(a) for a in rows)
        width = 1000 * -(-width // 1000)           # few shapes
        padded = np.zeros((len(rows), width), np.int16)
        for i, a in enumerate(rows):
            padded[i, :len(a)] = a
        feats, mask = fn(jnp.asarray(padded), jnp.asarray([len(a) for a in rows]))
        feats, mask = np.asarray(feats, np.float64), np.asarray(mask, np.float64)
        for i in range(len(rows)):
            f = feats[i, mask[i] > 0]
            out[lo + i] = np.concatenate([f.mean(0), f.std(0)])
    return out


@dataclasses.dataclass
class SoftmaxRegression:
    """Multinomial logistic regression on standardised features, fitted by L-BFGS."""
    l2: float = 1e-3
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    weights: np.ndarray | None = None     # (features + 1, classes), last row the bias

    def fit(self, x: np.ndarray, y: np.ndarray, classes: int) -> "SoftmaxRegression":
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-8
        z = np.hstack([(x - self.mean) / self.scale, np.ones((len(x), 1))])
        onehot = np.eye(classes)[y]
        penalty = np.ones((z.shape[1], 1))
        penalty[-1] = 0.0

        def objective(w_flat):
            w = w_flat.reshape(z.shape[1], classes)
            logits = z @ w
            logits -= logits.max(1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            loss = -(onehot * logp).sum() / len(z) + 0.5 * self.l2 * ((w * penalty) ** 2).sum()
            grad = z.T @ (np.exp(logp) - onehot) / len(z) + self.l2 * w * penalty
            return loss, grad.ravel()

        res = scipy.optimize.minimize(objective, np.zeros(z.shape[1] * classes), jac=True,
                                      method="L-BFGS-B", options={"maxiter": 5000})
        self.weights = res.x.reshape(z.shape[1], classes)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.hstack([(x - self.mean) / self.scale, np.ones((len(x), 1))])
        return np.argmax(z @ self.weights, 1)


def pooled_baseline(splits: dict[str, list[dict]], spec: FeatureSpec,
                    l2s: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)) -> dict:
    """The baseline on a ``train``/``validation``/``test`` split: ``l2`` chosen by validation
    accuracy, then the test accuracy of that fit. Returns ``{"l2", "validation", "parameters", "test"}``."""
    xs = {k: pooled_statistics([e["audio"] for e in v], spec) for k, v in splits.items()}
    ys = {k: np.array([e["label"] for e in v]) for k, v in splits.items()}
    best = None
    for l2 in l2s:
        model = SoftmaxRegression(l2).fit(xs["train"], ys["train"], 10)
        val = float(np.mean(model.predict(xs["validation"]) == ys["validation"]))
        if best is None or val > best[1]:
            best = (l2, val, model)
    l2, val, model = best
    return {"l2": l2, "validation": val, "parameters": int(model.weights.size),
            "test": float(np.mean(model.predict(xs["test"]) == ys["test"]))}
