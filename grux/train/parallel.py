"""Data parallelism with pmap semantics, implemented with ``jax.shard_map`` over a 1-D mesh.

Each device gets a ``1/n`` shard of the global batch (leading axis) and runs the per-device
code; parameters and optimizer state are replicated. Gradients are averaged over the data axis
exactly once: the objective differentiated is the global mean ``pmean(local_mean_loss)``, and
inside ``shard_map`` (``check_vma=True``) the gradient of a replicated parameter already carries
the cross-device sum from the transpose of that ``pmean`` — so no second ``pmean(grads)`` is
applied (doing so would scale updates by the device count). Tests compare
the sharded step against a single-device run.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from grux.train.config import ConfigError
from grux.train.optim import add_weight_noise

DATA_AXIS = "data"
LossFn = Callable[[Any, Any, jax.Array, Any], tuple[dict, Any]]


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``('data',)`` mesh over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, mesh: Mesh,
                    schedule: optax.Schedule | None = None, weight_noise: float = 0.0):
    """Build ``step(state, batch) -> (state, metrics)``, jit-compiled, ``state`` donated.

    ``state`` is ``{"params", "opt_state", "step", "rng", "carry"}``: everything replicated
    except ``carry`` (truncated-BPTT state, batch-leading), which is split like the batch.
    ``loss_fn(params, batch_shard, rng, carry_shard) -> (metrics, new_carry)`` is per-device
    code returning ``(sum, weight)`` pairs (see :mod:`grux.tasks.base`). The objective is the
    global mean ``psum(sum)/psum(weight)`` of ``metrics["loss"]``; its gradient with respect
    to the replicated parameters already carries the cross-device sum, so gradients are
    averaged exactly once (no extra ``pmean``). ``rng`` is derived from ``fold_in(state.rng,
    step)`` and folded with the device index: fresh per step and per shard, and a pure function
    of the step, so a resumed run draws the same numbers. ``weight_noise > 0`` evaluates the
    loss at ``θ + weight_noise·ε`` (:func:`grux.train.optim.add_weight_noise`), with ``ε``
    drawn from a key shared by all devices, so every shard sees the same noisy weights.
    Returned metrics are the summed pairs plus ``grad_norm`` and ``learning_rate`` as
    ``(value, 1)``.
    """

    def per_device(state, batch):
        noise_rng, rng = jax.random.split(jax.random.fold_in(state["rng"], state["step"]))
        rng = jax.random.fold_in(rng, lax.axis_index(DATA_AXIS))

        def objective(p):
            if weight_noise > 0:
                p = add_weight_noise(p, noise_rng, weight_noise)
            metrics, carry = loss_fn(p, batch, rng, state["carry"])
            total, weight = metrics["loss"]
            return lax.psum(total, DATA_AXIS) / lax.psum(weight, DATA_AXIS), (metrics, carry)

        (_, (metrics, carry)), grads = jax.value_and_grad(objective, has_aux=True)(
            state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new_state = dict(state, params=optax.apply_updates(state["params"], updates),
                         opt_state=opt_state, step=state["step"] + 1, carry=carry)
        metrics = _psum_pairs(metrics)
        one = jnp.ones((), jnp.float32)
        metrics["grad_norm"] = (optax.tree.norm(grads), one)
        if schedule is not None:
            metrics["learning_rate"] = (jnp.asarray(schedule(state["step"]), jnp.float32), one)
        return new_state, metrics

    specs = _state_specs()
    sharded = jax.shard_map(per_device, mesh=mesh, in_specs=(specs, P(DATA_AXIS)),
                            out_specs=(specs, P()))
    return jax.jit(sharded, donate_argnums=(0,))


def make_eval_step(loss_fn: LossFn, mesh: Mesh):
    """Build ``eval_step(params, batch, carry) -> (metrics, carry)``, pairs summed over
    devices. Evaluation is deterministic: ``loss_fn`` gets a fixed key (and the caller's
    ``loss_fn`` runs the model in deterministic mode)."""

    def per_device(params, batch, carry):
        metrics, carry = loss_fn(params, batch, jax.random.PRNGKey(0), carry)
        return _psum_pairs(metrics), carry

    return jax.jit(jax.shard_map(per_device, mesh=mesh,
                                 in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)),
                                 out_specs=(P(), P(DATA_AXIS))))


def _state_specs() -> dict:
    return {"params": P(), "opt_state": P(), "step": P(), "rng": P(), "carry": P(DATA_AXIS)}


def _psum_pairs(metrics: dict) -> dict:
    return {k: (lax.psum(s, DATA_AXIS), lax.psum(w, DATA_AXIS)) for k, (s, w) in metrics.items()}


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
    """This process's rows of a global batch → global arrays split over the data axis.

    Works with one process (the local batch is the global batch) and several (each process
    passes its contiguous slice, in process order)."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    n_local = len(mesh.local_devices)

    def put(x):
        x = np.asarray(x)
        if x.shape[0] % n_local:
            raise ValueError(f"per-process batch of {x.shape[0]} rows is not divisible by "
                             f"the {n_local} local devices")
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, local_batch)


def to_host(tree: Any) -> Any:
    """Replicated (or fully addressable) arrays → NumPy, on every process."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)
    return jax.tree.map(get, tree)


def local_copy(tree: Any) -> Any:
    """Replicated global arrays → this process's copy (arrays on its first device), so host
    code (decoders) can run jit functions on them without the global mesh."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x.addressable_data(0)
        return x
    return jax.tree.map(get, tree)


def process_share(n: int) -> range:
    """This process's contiguous share of ``range(n)`` (process order = index order)."""
    per, extra = divmod(n, jax.process_count())
    i = jax.process_index()
    lo = i * per + min(i, extra)
    return range(lo, lo + per + (i < extra))


def gather_sequences(local: list[list[int]]) -> list[list[int]]:
    """Every process's integer sequences, concatenated in process order, on every process
    (:func:`process_share` then gives them back in index order)."""
    if jax.process_count() == 1:
        return [list(map(int, s)) for s in local]
    width = max((len(s) for s in local), default=0)
    sizes = np.asarray(multihost_utils.process_allgather(np.int32([len(local), width])))
    rows, width = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    buf = np.full((max(rows, 1), width + 1), -1, np.int32)
    for i, seq in enumerate(local):
        buf[i, 0] = len(seq)
        buf[i, 1:len(seq) + 1] = seq
    every = np.asarray(multihost_utils.process_allgather(buf))
    return [every[p, i, 1:1 + every[p, i, 0]].tolist()
            for p in range(every.shape[0]) for i in range(int(sizes[p, 0]))]


def initialize_distributed(d) -> None:
    """``jax.distributed.initialize`` from ``config.distributed`` (no-op when unset).

    ``coordinator_address="auto"`` lets JAX detect the cluster (SLURM, Open MPI, Cloud TPU,
    a Kubernetes indexed Job) and its process count and index; ``"host:port"`` uses the
    explicit ``num_processes``/``process_id``. ``local_device_ids``, when set, is passed in
    both cases (under SLURM JAX otherwise gives each process only the GPU of its local rank).
    The three timeouts go to JAX as they are: ``initialization_timeout`` (every process must
    connect within it, else JAX aborts the process), ``heartbeat_timeout`` (a process silent
    that long counts as dead and JAX's coordination service stops every other one) and
    ``shutdown_timeout``. Must run before any other JAX call touches the devices.

    Raises:
      ConfigError: ``"auto"`` but JAX detects no cluster in this environment.
    """
    if not d.coordinator_address:
        return
    ids = ([int(i) for i in d.local_device_ids.replace(" ", "").split(",")]
           if d.local_device_ids.strip() else None)
    timeouts = dict(initialization_timeout=int(d.initialization_timeout),
                    heartbeat_timeout_seconds=int(d.heartbeat_timeout),
                    shutdown_timeout_seconds=int(d.shutdown_timeout))
    if d.coordinator_address != "auto":
        # 'deactivate': nothing is taken from the environment (JAX would otherwise still read
        # SLURM_LOCALID etc. for the local devices of an explicit host:port run)
        jax.distributed.initialize(coordinator_address=d.coordinator_address,
                                   num_processes=d.num_processes, process_id=d.process_id,
                                   local_device_ids=ids, cluster_detection_method="deactivate",
                                   **timeouts)
        return
    try:
        jax.distributed.initialize(local_device_ids=ids, **timeouts)
    except ValueError as e:
        if "should be defined" not in str(e):  # JAX's words when no cluster is detected
            raise
        raise ConfigError(
            "config.distributed.coordinator_address='auto', but JAX detects no cluster here "
            "(SLURM: launch with srun; Open MPI: mpirun; Cloud TPU VM; Kubernetes indexed "
            "Job); elsewhere give 'host:port' with distributed.num_processes and "
            f"distributed.process_id (JAX: {e})") from None


def describe_process(mesh: Mesh) -> str:
    """``process 1 of 2 on HOST: 4 of 8 devices (gpu)``: one line a process prints at start
    in a multi-process run, so a cluster log shows that every process joined."""
    import socket
    return (f"grux: process {jax.process_index()} of {jax.process_count()} on "
            f"{socket.gethostname()}: {len(mesh.local_devices)} of {mesh.devices.size} "
            f"devices ({jax.local_devices()[0].platform})")
