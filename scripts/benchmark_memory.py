#!/usr/bin/env python3
"""Peak host memory of one GRU layer's forward+backward on a long sequence: grux's custom VJP
(stores one residual per step), grux with ``remat=True`` (stores only the states and
recomputes the recurrent pre-activations in one matmul), grux's autodiff scan, and PyTorch
``nn.GRU`` (when importable).

    python3 scripts/benchmark_memory.py                   # B=32, T=4096, H=F=256
    python3 scripts/benchmark_memory.py --t 1024 --h 512

Each variant runs in its own fresh process, so none reuses memory another allocated and
freed. There the inputs are built and (JAX) the step compiled ahead of time. The kernel's
resident-set peak (``VmHWM``) is then reset through ``/proc/self/clear_refs``, the step is run
once, and the increase of the peak over the resident set just before is reported.
That is the step's own working memory: activations, residuals, gradients and the
allocator's slack. Inputs and parameters, allocated before, are not counted. For JAX the
compiled program's own plan (XLA ``memory_analysis``: temporaries plus outputs) is printed
beside it. Linux only (``/proc``). The lower bound printed for reference is the ``T·B·H``
float32 states that any backward pass through the recurrence must keep or recompute.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

VARIANTS = ("grux", "grux-remat", "grux-autodiff", "torch")


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(variant: str, b: int, t: int, h: int) -> dict:
    """Run in the child process: the step's peak memory increase (bytes)."""
    import numpy as np
    x_np = np.random.default_rng(0).normal(size=(b, t, h)).astype(np.float32)
    out: dict = {"variant": variant}
    if variant == "torch":
        try:
            import torch
        except ImportError:
            return {"variant": variant, "skipped": "torch not importable"}
        torch.manual_seed(0)
        m = torch.nn.GRU(h, h, batch_first=True)
        x = torch.from_numpy(x_np).requires_grad_(True)

        def step():
            m.zero_grad(set_to_none=True)
            x.grad = None
            y, _ = m(x)
            y.sum().backward()
        out["library"] = f"torch {torch.__version__}"
    else:
        import jax
        import jax.numpy as jnp
        from flax import nnx

        from grux.nn import GRULayer
        layer = GRULayer(h, h, remat=variant == "grux-remat",
                         backward="autodiff" if variant == "grux-autodiff" else "custom",
                         formulation="cudnn", rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(layer)
        x = jnp.asarray(x_np)
        grad = jax.jit(jax.grad(lambda p, x: jnp.sum(nnx.merge(graphdef, p)(x)[0]),
                                argnums=(0, 1)))

        compiled = grad.lower(params, x).compile()   # compiling's own memory is not counted
        mem = compiled.memory_analysis()
        if mem is not None:
            out["xla_plan_bytes"] = int(mem.temp_size_in_bytes + mem.output_size_in_bytes)

        def step():
            jax.block_until_ready(compiled(params, x))
        out["library"] = f"jax {jax.__version__}"
    before = _status("VmRSS")
    _reset_peak()
    step()
    out["peak_increase_bytes"] = _status("VmHWM") - before
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--b", type=int, default=32)
    p.add_argument("--t", type=int, default=4096)
    p.add_argument("--h", type=int, default=256)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(measure(a.child, a.b, a.t, a.h)))
        return
    variants = [v for v in a.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r} in --variants; choose from {VARIANTS}")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmark_rnn import cpu_model
    mib = 2.0 ** 20
    states = a.b * a.t * a.h * 4
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPU cores; one GRU layer, B={a.b}, "
          f"T={a.t}, H=F={a.h}, float32, forward+backward; T·B·H states = "
          f"{states / mib:.0f} MiB\n")
    print("| implementation | peak increase (MiB) | / grux | XLA plan (MiB) |")
    print("|---|---|---|---|")
    base = None
    for v in variants:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", v, "--b", str(a.b),
               "--t", str(a.t), "--h", str(a.h)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in sys.path if x))
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise SystemExit(f"variant {v} failed:\n{r.stderr[-2000:]}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        if "skipped" in res:
            print(f"| {v} | skipped: {res['skipped']} | | |")
            continue
        peak = res["peak_increase_bytes"]
        if v == "grux":
            base = peak
        plan = res.get("xla_plan_bytes")
        ratio = f"{peak / base:.2f}" if base else "–"
        plan_s = f"{plan / mib:.0f}" if plan else "–"
        print(f"| {v} ({res['library']}) | {peak / mib:.0f} | {ratio} | {plan_s} |", flush=True)

if __name__ == "__main__":
    main()
