"""The copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): remember ``length``
symbols over ``delay`` blank steps, then reproduce them after a "go" marker.

Model: one-hot tokens → recurrent stack → per-step softmax over ``symbols + 2`` classes.
Metrics: ``loss`` (cross-entropy per step over all steps), ``copy_accuracy`` (fraction of the
``length`` recalled symbols right). The memoryless baseline — blanks, then random symbols —
scores ``length·log(symbols)/(delay + 2·length)`` nats per step and accuracy ``1/symbols``.
Needs no files.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from grux.data.synthetic import copy_problem
from grux.tasks.base import GeneratedTask, register, weighted
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model


class Copier(nnx.Module):
    def __init__(self, classes: int, m: ml_collections.ConfigDict, rngs: nnx.Rngs):
        self.classes = classes
        self.rnn = build_recurrent(m, classes, rngs)
        self.head = nnx.Linear(m.hidden, classes, rngs=rngs)

    def __call__(self, tokens, rngs=None):
        out, _ = self.rnn(jax.nn.one_hot(tokens, self.classes), rngs=rngs)
        return self.head(out)


@register
class CopyTask(GeneratedTask):
    name = "copy"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "copy", "delay": 50, "length": 10, "symbols": 8,
                     "eval_examples": 1024},
            "model": recurrent_model_config(hidden=128),
        })

    @staticmethod
    def validate(config):
        t = config.task
        if t.delay < 1 or t.length < 1 or t.symbols < 2 or t.eval_examples < 1:
            raise ValueError("config.task.delay, length, eval_examples must be >= 1 and "
                             f"symbols >= 2, got {t.delay}, {t.length}, {t.eval_examples}, "
                             f"{t.symbols}")
        validate_recurrent_model(config.model)

    def build_model(self, rngs):
        return Copier(self.config.task.symbols + 2, self.config.model, rngs)

    def make_batch(self, rng, batch_size):
        t = self.config.task
        x, y = copy_problem(rng, batch_size, t.delay, symbols=t.symbols, length=t.length)
        return {"x": x, "y": y}

    def loss(self, model, batch, *, rng, carry, train):
        logits = model(batch["x"], rngs=rng if train else None)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        recall = jnp.zeros(batch["y"].shape).at[:, -self.config.task.length:].set(1.0)
        right = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
        return {"loss": weighted(ce), "copy_accuracy": weighted(right, recall)}, carry

    def report(self, results):
        test = results.get("test")
        if not test:
            return []
        t = self.config.task
        base = t.length * math.log(t.symbols) / (t.delay + 2 * t.length)
        return [f"test loss {test['loss']:.4f} (memoryless baseline {base:.4f}), copy accuracy "
                f"{test['copy_accuracy']:.3f} (chance {1 / t.symbols:.3f})"]
