"""One process of a run started the way SLURM starts it (SLURM's variables in the environment,
see ``test_clusters.slurm_env``): joins through grux's own
``initialize_distributed(coordinator_address="auto")``, so JAX's real SLURM detection runs,
then reports how a global batch is split. Prints one JSON line.

``cluster_worker.py``: no arguments; the global batch has 8 rows."""
import json

import jax
import numpy as np
from jax.experimental import multihost_utils

from grux.data.stream import BatchStream
from grux.tasks import get_task_class
from grux.train import base_config, parallel

B = 8


def rows(i):
    """Global batch ``i``: row ``r`` holds ``1000·i + r`` (so a row names itself)."""
    return {"x": (1000 * i + np.arange(B, dtype=np.int32))[:, None] * np.ones((1, 3), np.int32)}


def main():
    c = base_config("echo")
    c.distributed.coordinator_address = "auto"
    parallel.initialize_distributed(c.distributed)
    mesh = parallel.make_mesh()
    pi, pc = jax.process_index(), jax.process_count()

    local = next(BatchStream(rows, B, process_index=pi, process_count=pc))
    x = parallel.global_batch(local, mesh)["x"]
    shards = sorted([int(s.data[0, 0]), int(s.data[-1, 0]), s.index[0].start, s.index[0].stop,
                     bool(np.array_equal(np.asarray(s.data), rows(0)["x"][s.index]))]
                    for s in x.addressable_shards)
    gathered = np.asarray(multihost_utils.process_allgather(x, tiled=True))

    task = get_task_class("echo")(c)  # the task's own streams, as the trainer builds them
    mine, whole = next(task.train_stream(B, pi, pc)), next(task.train_stream(B, 0, 1))
    lo, hi = pi * B // pc, (pi + 1) * B // pc
    train_ok = all(np.array_equal(a, b[lo:hi]) for a, b in
                   zip(jax.tree.leaves(mine), jax.tree.leaves(whole)))
    ev_mine = next(iter(task.eval_streams(B, pi, pc)["validation"]))
    ev_whole = next(iter(task.eval_streams(B, 0, 1)["validation"]))
    eval_ok = all(np.array_equal(a, b[lo:hi]) for a, b in
                  zip(jax.tree.leaves(ev_mine), jax.tree.leaves(ev_whole)))
    print(json.dumps({"process_index": pi, "process_count": pc,
                      "local_devices": len(mesh.local_devices), "devices": mesh.devices.size,
                      "local_rows": local["x"][:, 0].tolist(), "shards": shards,
                      "gathered_ok": bool(np.array_equal(gathered, rows(0)["x"])),
                      "train_ok": train_ok, "eval_ok": eval_ok}), flush=True)


if __name__ == "__main__":
    main()
