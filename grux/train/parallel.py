"""Data parallelism with pmap semantics, implemented with ``jax.shard_map`` over a 1-D mesh.

Each device gets a ``1/n`` shard of the global batch (leading axis) and runs the per-device
code; parameters and optimizer state are replicated. Gradients are averaged over the data axis
exactly once: the objective differentiated is the global mean ``pmean(local_mean_loss)``, and
inside ``shard_map`` (``check_vma=True``) the gradient of a replicated parameter already carries
the cross-device sum from the transpose of that ``pmean`` — so no second ``pmean(grads)`` is
applied (doing so would scale updates by the device count; see shared NOTES). Tests compare
the sharded step against a single-device run.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``('data',)`` mesh over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def check_batch_divisible(global_batch: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if global_batch % n:
        raise ValueError(f"global batch size {global_batch} is not divisible by the "
                         f"{n} devices of the data mesh")


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Place a host batch (leading axis = global batch) split across the data axis."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    leaves = jax.tree.leaves(batch)
    if leaves:
        check_batch_divisible(np.shape(leaves[0])[0], mesh)
    return jax.tree.map(lambda x: jax.device_put(x, sharding), batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, NamedSharding(mesh, P()))


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, mesh: Mesh):
    """Build ``step(params, opt_state, batch, rng) -> (params, opt_state, metrics)``.

    ``loss_fn(params, batch_shard, rng) -> (mean_loss_over_shard, metrics)`` is per-device
    code. ``rng`` is folded with the device index so dropout differs across shards. Metrics are
    averaged over devices (``pmean``). Shards must be of equal size, so the per-device mean
    of the means is the global mean.
    """

    def per_device(params, opt_state, batch, rng):
        rng = jax.random.fold_in(rng, lax.axis_index(DATA_AXIS))

        def objective(p):
            loss, metrics = loss_fn(p, batch, rng)
            return lax.pmean(loss, DATA_AXIS), metrics

        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = lax.pmean(dict(metrics, loss=loss,
                                 grad_norm=optax.global_norm(grads)), DATA_AXIS)
        return params, opt_state, metrics

    sharded = jax.shard_map(per_device, mesh=mesh,
                            in_specs=(P(), P(), P(DATA_AXIS), P()),
                            out_specs=(P(), P(), P()))
    return jax.jit(sharded, donate_argnums=(0, 1))


def make_eval_step(loss_fn: LossFn, mesh: Mesh):
    """Build ``eval_step(params, batch, rng) -> metrics`` averaged over the data axis."""

    def per_device(params, batch, rng):
        loss, metrics = loss_fn(params, batch, rng)
        return lax.pmean(dict(metrics, loss=loss), DATA_AXIS)

    return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P()),
                                 out_specs=P()))
