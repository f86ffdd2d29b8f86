"""Optimizer and learning-rate schedule from ``config.optimizer`` (optax).

The chain is ``clip_by_global_norm(clip_norm) → [L2 weight decay] → optimizer(schedule)``:
clipping sees the raw gradient (as in Pascanu et al. 2013 and the GRU papers), and for
``adamw`` the decay is AdamW's own decoupled term instead of the L2 gradient term.
Optimizers: Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), RMSProp (as used by
Chung et al. 2014), Adadelta (as used by Bahdanau et al. 2014), SGD with optional (Nesterov)
momentum.
"""
from __future__ import annotations

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
    return optax.chain(*parts), lr


def add_weight_noise(params, rng, std: float):
    """``θ̃ = θ + std·ε``, ``ε ~ N(0, I)`` fresh for every parameter and step (Graves 2011).

    The training loss is evaluated at ``θ̃`` and its gradient (``∂θ̃/∂θ = I``) applied to the
    clean ``θ``; evaluation uses ``θ``."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(rng, len(leaves))
    return jax.tree.unflatten(treedef, [
        x + jnp.asarray(std, x.dtype) * jax.random.normal(k, x.shape, x.dtype)
        for x, k in zip(leaves, keys)])
