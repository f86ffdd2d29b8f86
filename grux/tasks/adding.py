"""The adding problem (Hochreiter & Schmidhuber 1997): the embedded default task.

Input ``(B, T, 2)``: uniform values and a marker channel with two ones, one in each half;
target: the sum of the two marked values. Model: a recurrent stack, then a linear read-out of
the last layer's final state. Metric: mean squared error; predicting the constant 1 gives
``1/6 ≈ 0.167``, so a model below ~0.05 has learned to carry a value over up to ``T`` steps.
Needs no files: every batch is generated from ``(seed, split, index)``.
"""
from __future__ import annotations

import jax
import ml_collections
from flax import nnx

from grux.data.synthetic import adding_problem
from grux.tasks.base import GeneratedTask, register, weighted
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model

TRIVIAL_MSE = 1.0 / 6.0


class Regressor(nnx.Module):
    """Recurrent stack → linear read-out of the last layer's final state → ``(B,)``."""

    def __init__(self, m: ml_collections.ConfigDict, in_features: int, rngs: nnx.Rngs):
        self.rnn = build_recurrent(m, in_features, rngs)
        self.head = nnx.Linear(m.hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array, rngs: jax.Array | None = None) -> jax.Array:
        _, final = self.rnn(x, rngs=rngs)
        last = final[0] if isinstance(final, tuple) else final  # LSTM: (h, c)
        return self.head(last[-1])[:, 0]


@register
class AddingTask(GeneratedTask):
    name = "adding"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {
                "name": "adding",
                "length": 200,          # T: sequence length
                "eval_examples": 2048,  # sequences per evaluation split (validation, test)
            },
            "model": recurrent_model_config(),
        })

    @staticmethod
    def validate(config: ml_collections.ConfigDict) -> None:
        if config.task.length < 2:
            raise ValueError(f"config.task.length must be >= 2, got {config.task.length}")
        if config.task.eval_examples < 1:
            raise ValueError("config.task.eval_examples must be positive, got "
                             f"{config.task.eval_examples}")
        validate_recurrent_model(config.model)

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return Regressor(self.config.model, 2, rngs)

    def make_batch(self, rng, batch_size):
        x, y = adding_problem(rng, batch_size, self.config.task.length)
        return {"x": x, "y": y}

    def loss(self, model, batch, *, rng, carry, train):
        pred = model(batch["x"], rngs=rng if train else None)
        return {"loss": weighted((pred - batch["y"]) ** 2)}, carry

    def report(self, summary: dict) -> list[str]:
        mse = summary.get("test", {}).get("loss")
        if mse is None:
            return []
        verdict = "learned the task" if mse < 0.05 else "did not learn the task"
        return [f"test MSE {mse:.4f} vs {TRIVIAL_MSE:.4f} for always predicting 1: "
                f"the {self.config.model.cell} {verdict} (T={self.config.task.length})"]
