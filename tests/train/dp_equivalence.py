"""Run a few data-parallel GRU training steps on all local devices; print the parameters.

Used by tests/train/test_parallel.py under different XLA device counts.
"""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from grux.data.synthetic import adding_problem
from grux.nn import GRU
from grux.train.parallel import make_mesh, make_train_step, replicate, shard_batch


class Model(nnx.Module):
    def __init__(self, rngs):
        self.rnn = GRU(2, 16, num_layers=2, rngs=rngs)
        self.head = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.head(self.rnn(x)[1][-1])[:, 0]


def main(steps: int):
    graphdef, params = nnx.split(Model(nnx.Rngs(0)), nnx.Param)
    tx = optax.adam(1e-2)
    mesh = make_mesh()

    def loss_fn(p, batch, rng):
        x, y = batch
        return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2), {}

    step = make_train_step(loss_fn, tx, mesh)
    params = replicate(params, mesh)
    opt_state = replicate(tx.init(params), mesh)
    rng = np.random.default_rng(0)
    losses = []
    for i in range(steps):
        batch = shard_batch(adding_problem(rng, 16, 20), mesh)
        params, opt_state, metrics = step(params, opt_state, batch, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    flat = [np.asarray(v).ravel().tolist() for v in jax.tree.leaves(params)]
    print(json.dumps({"devices": len(jax.devices()), "losses": losses, "params": flat}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
