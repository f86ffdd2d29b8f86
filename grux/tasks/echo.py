"""Delayed echo on an endless bit stream: the truncated-BPTT task.

Each of ``B`` rows is an endless stream of fair coin flips ``u_t``; the target at step ``t`` is
``u_{t−d}``. The trainer sees the stream in consecutive windows of ``W`` steps (batch ``i`` =
steps ``[iW, (i+1)W)`` of every row), the layout of truncated BPTT in language modelling
(Zaremba et al. 2014). With ``task.stateful=True`` the recurrent state is carried from one
window to the next (gradients stop at the boundary), so the first ``d`` targets of a window,
whose inputs lie in the previous window, are predictable; with ``stateful=False`` each window
starts from a zero state and those ``d`` targets are coin flips. Accuracy therefore tops out
near ``1`` with state and near ``1 − d/(2W)`` without it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from grux.data.stream import BatchStream, seeded_rng
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model
from grux.tasks.base import SPLIT_IDS, Task, register, swap_batch_axis, weighted


def stream_window(seed: int, split: int, row: int, window: int, width: int) -> np.ndarray:
    """Bits ``u_t`` for ``t ∈ [window·width, (window+1)·width)`` of stream ``row``; ``(width,)``."""
    if window < 0:
        return np.zeros(width, np.float32)
    return seeded_rng(seed, split, row, window).integers(0, 2, width).astype(np.float32)


class Echo(nnx.Module):
    """Recurrent stack → per-step logit; threads the stack's state in and out."""

    def __init__(self, m: ml_collections.ConfigDict, rngs: nnx.Rngs):
        self.rnn = build_recurrent(m, 1, rngs)
        self.head = nnx.Linear(m.hidden, 1, rngs=rngs)

    def __call__(self, x, state, rngs=None):
        out, final = self.rnn(x[..., None], initial_state=state, rngs=rngs)
        return self.head(out)[..., 0], final


@register
class EchoTask(Task):
    name = "echo"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {
                "name": "echo",
                "delay": 5,             # d: the target is the input d steps back
                "window": 20,           # W: truncated-BPTT window (steps per batch)
                "stateful": True,       # carry the recurrent state across windows
                "eval_windows": 16,     # consecutive windows per evaluation split
            },
            "model": recurrent_model_config(hidden=32),
        })

    @staticmethod
    def validate(config):
        t = config.task
        if not 1 <= t.delay < t.window:
            raise ValueError(f"config.task.delay must be in [1, window={t.window}), "
                             f"got {t.delay}")
        if t.eval_windows < 1:
            raise ValueError(f"config.task.eval_windows must be >= 1, got {t.eval_windows}")
        validate_recurrent_model(config.model)

    def build_model(self, rngs):
        return Echo(self.config.model, rngs)

    def _stream(self, split, batch_size, num_batches, pi, pc):
        seed, w, d = self.config.seed, self.config.task.window, self.config.task.delay
        sid = SPLIT_IDS[split]

        def global_batch(i):
            cur = np.stack([stream_window(seed, sid, b, i, w) for b in range(batch_size)])
            prev = np.stack([stream_window(seed, sid, b, i - 1, w)[w - d:]
                             for b in range(batch_size)])
            target = np.concatenate([prev, cur[:, :w - d]], axis=1)
            # the first d targets of the very first window precede the stream: not scored
            weight = np.ones_like(cur)
            if i == 0:
                weight[:, :d] = 0.0
            return {"x": cur, "y": target, "weight": weight}

        return BatchStream(global_batch, batch_size, num_batches,
                           process_index=pi, process_count=pc)

    def train_stream(self, batch_size, process_index, process_count):
        return self._stream("train", batch_size, None, process_index, process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        n = self.config.task.eval_windows
        return {s: self._stream(s, batch_size, n, process_index, process_count)
                for s in ("validation", "test")}

    def initial_carry(self, model, batch_size):
        state = model.rnn.initial_state(batch_size)
        return {"h": swap_batch_axis(state)}  # batch-leading for sharding

    def loss(self, model, batch, *, rng, carry, train):
        state = swap_batch_axis(carry["h"]) if self.config.task.stateful else None
        logits, final = model(batch["x"], state, rngs=rng if train else None)
        nll = optax.sigmoid_binary_cross_entropy(logits, batch["y"])
        correct = ((logits > 0) == (batch["y"] > 0.5)).astype(jnp.float32)
        new_carry = {"h": jax.lax.stop_gradient(swap_batch_axis(final))}
        w = batch["weight"]
        return {"loss": weighted(nll, w), "accuracy": weighted(correct, w)}, new_carry
