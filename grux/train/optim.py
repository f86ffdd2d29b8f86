"""Optimizer and learning-rate schedule from ``config.optimizer`` (optax).

The chain is ``clip_by_global_norm(clip_norm) → [L2 weight decay] → optimizer(schedule)``:
clipping sees the raw gradient (as in Pascanu et al. 2013 and the GRU papers), and for
``adamw`` the decay is AdamW's own decoupled term instead of the L2 gradient term.
Optimizers: Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), RMSProp (as used by
Chung et al. 2014), Adadelta (as used by Bahdanau et al. 2014), SGD with optional (Nesterov)
momentum. With ``ema_decay > 0`` the chain ends in :func:`params_ema`, which keeps an
exponential moving average of the parameters in the optimizer state (so checkpoints and exact
resume carry it); evaluation and inference use it (:func:`evaluation_params`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax


def make_schedule(o: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Peak ``learning_rate`` after ``warmup_steps`` of linear warm-up, then the decay."""
    peak, warm = o.learning_rate, o.warmup_steps
    rest = max(1, total_steps - warm)
    if o.schedule == "constant":
        decay = optax.constant_schedule(peak)
    elif o.schedule == "cosine":
        decay = optax.cosine_decay_schedule(peak, rest, alpha=o.end_factor)
    elif o.schedule == "linear":
        decay = optax.linear_schedule(peak, peak * o.end_factor, rest)
    elif o.schedule == "exponential":
        decay = optax.exponential_decay(peak, o.decay_every, o.decay_rate, staircase=True,
                                        transition_begin=o.decay_start)
    else:
        raise ValueError(f"config.optimizer.schedule: unknown schedule {o.schedule!r}")
    if warm == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warm), decay], [warm])


def make_optimizer(o: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """``(transformation, schedule)`` for ``config.optimizer``."""
    lr = make_schedule(o, total_steps)
    if o.name == "adam":
        opt = optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)
    elif o.name == "adamw":
        opt = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    elif o.name == "rmsprop":
        opt = optax.rmsprop(lr, decay=o.rho, eps=o.eps, momentum=o.momentum or None)
    elif o.name == "adadelta":
        opt = optax.adadelta(lr, rho=o.rho, eps=o.eps)
    elif o.name == "sgd":
        opt = optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov)
    else:
        raise ValueError(f"config.optimizer.name: unknown optimizer {o.name!r}")
    parts = []
    if o.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.clip_norm))
    if o.weight_decay > 0 and o.name != "adamw":
        parts.append(optax.add_decayed_weights(o.weight_decay))
    parts.append(opt)
    if o.ema_decay > 0:
        parts.append(params_ema(o.ema_decay))
    return optax.chain(*parts), lr


class ParamsEMAState(NamedTuple):
    """The moving average of the parameters and the number of updates it has seen."""
    count: jax.Array
    ema: Any


def params_ema(decay: float) -> optax.GradientTransformation:
    """Track ``ē ← d_t·ē + (1 − d_t)·θ_{t+1}`` with ``d_t = min(decay, (1 + t) / (10 + t))``
    after every update ``θ_{t+1} = θ_t + u_t`` (Polyak & Juditsky 1992's averaging with an
    exponential window, as ``tf.train.ExponentialMovingAverage(num_updates=t)``: the short
    window of the first steps keeps the random initialisation out of the average). The
    updates pass through unchanged, so training is exactly the run without it; ``ē`` starts
    at the initial parameters. Put it last in a chain: it must see the final update."""

    def init(params):  # a copy: the train step donates its state, so no buffer may be shared
        return ParamsEMAState(count=jnp.zeros((), jnp.int32),
                              ema=jax.tree.map(lambda x: jnp.array(x, copy=True), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("params_ema needs the parameters: call update(updates, state, "
                             "params)")
        t = state.count.astype(jnp.float32)
        d = jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), state.ema, new)
        return updates, ParamsEMAState(count=state.count + 1, ema=ema)

    return optax.GradientTransformation(init, update)


def evaluation_params(state: dict):
    """The parameters to evaluate a train state with: the moving average when the optimizer
    keeps one (``optimizer.ema_decay > 0``), else the trained parameters."""
    opt_state = state["opt_state"]
    if isinstance(opt_state, tuple) and opt_state and isinstance(opt_state[-1],
                                                                 ParamsEMAState):
        return opt_state[-1].ema
    return state["params"]


def add_weight_noise(params, rng, std: float):
    """``θ̃ = θ + std·ε``, ``ε ~ N(0, I)`` fresh for every parameter and step (Graves 2011).

    The training loss is evaluated at ``θ̃`` and its gradient (``∂θ̃/∂θ = I``) applied to the
    clean ``θ``; evaluation uses ``θ``."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(rng, len(leaves))
    return jax.tree.unflatten(treedef, [
        x + jnp.asarray(std, x.dtype) * jax.random.normal(k, x.shape, x.dtype)
        for x, k in zip(leaves, keys)])
