#!/usr/bin/env python3
"""Data-parallel overhead on one host: the train step of a config on 1, 2, 4, 8 forced CPU
devices, the same global batch, medians of repeated timings (docs/clusters.md, "Scaling").

    python3 scripts/scaling_cpu.py                                    # char LM, ptb_char
    python3 scripts/scaling_cpu.py --config configs/char_lm.py:tiny_shakespeare --devices 1 8
    python3 scripts/scaling_cpu.py --params configs/ptb_word.py:medium,gru configs/multi30k.py

For each device count a child process (``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
``JAX_PLATFORMS=cpu``) builds the task, the optimizer and the jit-compiled ``shard_map``
train step exactly as ``grux.train`` does (``grux.train.parallel.make_train_step``), feeds it
the task's own training batches, compiles and warms up, then times ``--steps`` steps
``--repeats`` times (median). Device counts run in turn, repeated ``--rounds`` times in
alternating order, so slow drift of a shared machine hits every count alike.

Forced CPU devices share the host's cores: on a 2-core machine 8 "devices" are 8 XLA
partitions of the same two cores, so this measures the cost of splitting the batch and of
the cross-device gradient sum, not a speedup. ``--params`` prints parameter counts and the
gradient all-reduce size of configs (no training).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(spec: str, steps: int, repeats: int, warmup: int) -> dict:
    import jax
    from flax import nnx
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from grux.tasks import get_task_class
    from grux.train import parallel
    from grux.train.config import validate
    from grux.train.main import load_config_file
    from grux.train.trainer import initial_state

    config = load_config_file(spec)
    mesh = parallel.make_mesh()
    validate(config, device_count=mesh.devices.size)
    task = get_task_class(config.task.name)(config)
    _, graphdef, rest, state, tx, schedule = initial_state(config, task)
    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(parallel.DATA_AXIS))
    state = {k: jax.device_put(v, split if k == "carry" else rep) for k, v in state.items()}

    def train_loss(p, batch, rng, carry):  # as grux.train.trainer._Trainer builds it
        return task.loss(nnx.merge(graphdef, p, rest), batch, rng=rng, carry=carry,
                         train=True)

    step = parallel.make_train_step(train_loss, tx, mesh, schedule,
                                    weight_noise=config.weight_noise)
    stream = task.train_stream(config.batch_size, 0, 1)

    def run(n):
        nonlocal state
        weights = []
        for _ in range(n):  # dispatched asynchronously, as in the trainer
            batch = parallel.global_batch(next(stream), mesh)
            state, metrics = step(state, batch)
            weights.append(metrics["loss"][1])
        jax.block_until_ready(state)
        return float(sum(parallel.to_host(weights)))

    t0 = time.perf_counter()
    run(warmup)  # compiles on the first step
    compile_s = time.perf_counter() - t0
    times, items = [], []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        items.append(run(steps))
        times.append((time.perf_counter() - t0) / steps)
    cores_busy = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    return {"devices": mesh.devices.size, "step_ms": 1e3 * statistics.median(times),
            "step_ms_all": [round(1e3 * t, 2) for t in times],
            "items_per_step": statistics.median(items) / steps,
            "warmup_s": compile_s, "params": int(n_params), "cores_busy": cores_busy}


def _params(specs: list[str]) -> None:
    import jax
    import numpy as np
    from flax import nnx

    from grux.tasks import get_task_class
    from grux.train.main import load_config_file
    print("| config | parameters | f32 gradient (MB) | ring all-reduce bytes per device, "
          "n=8 (MB) | n=64 (MB) | global batch |")
    print("|---|---|---|---|---|---|")
    for spec in specs:
        config = load_config_file(spec)
        task = get_task_class(config.task.name)(config)
        shapes = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
        params = nnx.split(shapes, nnx.Param, ...)[1]
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
        mb = 4 * n / 1e6
        print(f"| `{os.path.relpath(spec, ROOT) if os.path.isabs(spec) else spec}` | {n:,} | "
              f"{mb:.1f} | {2 * 7 / 8 * mb:.1f} | {2 * 63 / 64 * mb:.1f} | "
              f"{config.batch_size} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/char_lm.py:ptb_char")
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    p.add_argument("--rounds", type=int, default=2,
                   help="passes over the device counts (alternating order)")
    p.add_argument("--params", nargs="*", metavar="CONFIG",
                   help="only print parameter counts and all-reduce sizes of these configs")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.params is not None:
        _params(a.params or [a.config])
        return
    if a.child:
        print(json.dumps(_child(a.config, a.steps, a.repeats, a.warmup)), flush=True)
        return
    cpu = "unknown CPU"
    if os.path.isfile("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(f"{a.config}: {os.cpu_count()} cores ({cpu}), {platform.python_version()}, "
          f"{a.steps} steps x {a.repeats} repeats after {a.warmup} warm-up steps, "
          f"{a.rounds} rounds", flush=True)
    results: dict[int, list[dict]] = {n: [] for n in a.devices}
    for r in range(a.rounds):
        for n in (a.devices if r % 2 == 0 else a.devices[::-1]):
            env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
                       XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                  "--config", a.config, "--steps", str(a.steps),
                                  "--repeats", str(a.repeats), "--warmup", str(a.warmup)],
                                 env=env, capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                sys.exit(f"{n} devices failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[n].append(res)
            print(f"  round {r + 1}, {n} device(s): {res['step_ms']:.1f} ms/step "
                  f"(repeats {res['step_ms_all']}), warm-up {res['warmup_s']:.1f} s, "
                  f"{res['cores_busy']:.2f} cores busy (process CPU time / wall time)",
                  flush=True)
    base = statistics.median(x["step_ms"] for x in results[a.devices[0]])
    items = results[a.devices[0]][0]["items_per_step"]
    print(f"\n{results[a.devices[0]][0]['params']:,} parameters, {items:.0f} items "
          "(tokens) per step\n")
    print(f"| devices | rows per device | ms per step (median) | items/s | time vs "
          f"{a.devices[0]} device(s) | cores busy |")
    print("|---|---|---|---|---|---|")
    from grux.train.main import load_config_file
    batch = load_config_file(a.config).batch_size
    for n in a.devices:
        ms = statistics.median(x["step_ms"] for x in results[n])
        busy = statistics.median(x["cores_busy"] for x in results[n])
        print(f"| {n} | {batch // n} | {ms:.1f} | {items / ms * 1e3:,.0f} | {ms / base:.2f}x "
              f"| {busy:.2f} |")


if __name__ == "__main__":
    main()
