#!/usr/bin/env python3
"""Benchmark grux's GRU against flax linen ``nn.RNN(nn.GRUCell)`` and PyTorch ``nn.GRU``.

    python3 scripts/benchmark_rnn.py                 # full table (a few minutes on 2 CPU cores)
    python3 scripts/benchmark_rnn.py --quick         # one small shape, few repeats
    python3 scripts/benchmark_rnn.py --shapes 32x256x512 --repeats 9

All runs happen in one process: for every shape (B×T×H, input size F = H, float32) each
implementation is compiled/warmed up, then timed ``--repeats`` times; medians are reported,
with ratios against grux and the achieved fraction of the machine's large-matmul rate
(measured here, same process, as a 2048³ f32 matmul in JAX). Model FLOPs per forward are
``2·T·B·(F·3H + H·3H)``; forward+backward counts three times that. On a GPU it runs
unchanged (PyTorch then uses cuDNN). PyTorch is optional: without it its rows are skipped.

A second table compares minGRU's parallel (associative), chunked and sequential scans with the
sequential GRU scan at long sequence lengths.

    python3 scripts/benchmark_rnn.py --bidirectional   # fused vs two-scan bidirectional GRU

``--bidirectional`` instead times one bidirectional GRU layer both ways on the same
parameters, forward and forward+backward: the two-scan form (two scans of ``T`` steps) and
the fused form (``Bidirectional(fuse=True)``: one scan of ``T`` steps advancing both
directions with one batched recurrent matmul). Shapes default to B=32, T=256, H in {256, 512};
the two forms are timed interleaved (one call of each per round) so that load drifting on a
shared machine affects both alike; medians and the fused/two-scan ratio are printed (< 1:
fused faster).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen
from flax import nnx

from grux.nn import Bidirectional, GRULayer, MinGRULayer, linen_gru_params


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(repeats: int) -> float:
    n = 2048
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    t = median_time(lambda: f(a).block_until_ready(), repeats)
    return 2 * n ** 3 / t / 1e9


def _jax_timers(apply, params, x, repeats):
    """Time forward and forward+backward (grads w.r.t. params and x) of a JAX function."""
    fwd = jax.jit(apply)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x)), argnums=(0, 1)))
    t_f = median_time(lambda: jax.block_until_ready(fwd(params, x)), repeats)
    t_b = median_time(lambda: jax.block_until_ready(grad(params, x)), repeats)
    return t_f, t_b


def time_layer(layer, x, repeats):
    """Forward and forward+backward times of a grux layer, through nnx.split/merge + jit."""
    graphdef, params = nnx.split(layer)
    return _jax_timers(lambda p, x: nnx.merge(graphdef, p)(x)[0], params, x, repeats)


def bench_grux(h, x, repeats, backward="custom"):
    layer = GRULayer(h, h, backward=backward, rngs=nnx.Rngs(0))
    return time_layer(layer, x, repeats), layer


def bench_linen(layer, x, repeats):
    rnn = linen.RNN(linen.GRUCell(features=layer.hidden_features))
    params = {"params": {"cell": jax.tree.map(jnp.asarray, linen_gru_params(layer))}}
    return _jax_timers(lambda p, x: rnn.apply(p, x), params, x, repeats)


def bench_torch(h, x_np, repeats):
    try:
        import torch
    except ImportError:
        return None
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    m = torch.nn.GRU(h, h, batch_first=True).to(dev)
    x = torch.from_numpy(x_np).to(dev).requires_grad_(True)

    def fwd():
        with torch.no_grad():
            m(x)
        sync()

    def fwd_bwd():
        m.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = m(x)
        out.sum().backward()
        sync()

    return median_time(fwd, repeats), median_time(fwd_bwd, repeats), torch.__version__


def gru_table(shapes, repeats, peak):
    rows = []
    for (b, t, h) in shapes:
        x_np = np.random.default_rng(0).normal(size=(b, t, h)).astype(np.float32)
        x = jnp.asarray(x_np)
        flops_f = 2 * t * b * (h * 3 * h + h * 3 * h)
        (g_f, g_b), layer = bench_grux(h, x, repeats)
        (a_f, a_b), _ = bench_grux(h, x, repeats, backward="autodiff")
        l_f, l_b = bench_linen(layer, x, repeats)
        tt = bench_torch(h, x_np, repeats)
        entries = [("grux GRU (custom VJP)", g_f, g_b), ("grux GRU (autodiff scan)", a_f, a_b),
                   ("flax linen nn.RNN(GRUCell)", l_f, l_b)]
        if tt is not None:
            entries.append((f"torch {tt[2]} nn.GRU", tt[0], tt[1]))
        for name, tf, tb in entries:
            rows.append((f"{b}x{t}x{h}", name, tf, tb, tf / g_f, tb / g_b,
                         flops_f / tf / 1e9 / peak, 3 * flops_f / tb / 1e9 / peak))
        print_rows(rows[-len(entries):])
    return rows


def print_rows(rows):
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2] * 1e3:.1f} | {r[3] * 1e3:.1f} | {r[4]:.2f} | "
              f"{r[5]:.2f} | {r[6]:.0%} | {r[7]:.0%} |", flush=True)


def bidirectional_table(shapes, repeats, formulation="cudnn", masked=False):
    """Two-scan vs fused bidirectional GRU layer, forward and forward+backward, timed
    interleaved on the same parameters (a whole round: two-scan fwd, fused fwd, two-scan
    fwd+bwd, fused fwd+bwd); medians over ``repeats`` rounds after 2 warm-up rounds."""
    print(f"Bidirectional GRU layer ({formulation}), F = H, float32"
          f"{', random lengths in [T/2, T]' if masked else ''}; ratio = fused / two-scan\n")
    print("| B x T x H | two-scan fwd (ms) | fused fwd (ms) | fwd ratio | "
          "two-scan fwd+bwd (ms) | fused fwd+bwd (ms) | fwd+bwd ratio |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for (b, t, h) in shapes:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=(b, t, h)).astype(np.float32))
        lengths = (jnp.asarray(rng.integers(t // 2, t + 1, size=b), jnp.int32) if masked
                   else None)
        fwd_l = GRULayer(h, h, formulation=formulation, rngs=nnx.Rngs(0))
        bwd_l = GRULayer(h, h, formulation=formulation, rngs=nnx.Rngs(1))
        fns = []
        for fuse in (False, True):
            graphdef, params = nnx.split(Bidirectional(fwd_l, bwd_l, fuse=fuse))
            apply = lambda p, x, g=graphdef: nnx.merge(g, p)(x, lengths=lengths)[0]
            fwd = jax.jit(apply)
            grad = jax.jit(jax.grad(lambda p, x, a=apply: jnp.sum(a(p, x)), argnums=(0, 1)))
            fns.append((lambda f=fwd, p=params: jax.block_until_ready(f(p, x)),
                        lambda g=grad, p=params: jax.block_until_ready(g(p, x))))
        order = [fns[0][0], fns[1][0], fns[0][1], fns[1][1]]
        times = [[] for _ in order]
        for r in range(repeats + 2):
            for i, fn in enumerate(order):
                t0 = time.perf_counter()
                fn()
                if r >= 2:
                    times[i].append(time.perf_counter() - t0)
        f2, f1, b2, b1 = (statistics.median(ts) for ts in times)
        rows.append((f"{b}x{t}x{h}", f2, f1, b2, b1))
        print(f"| {b}x{t}x{h} | {f2 * 1e3:.1f} | {f1 * 1e3:.1f} | {f1 / f2:.2f} | "
              f"{b2 * 1e3:.1f} | {b1 * 1e3:.1f} | {b1 / b2:.2f} |", flush=True)
    return rows


def mingru_table(lengths, b, h, repeats):
    print(f"\nB={b}, H=F={h}, forward / fwd+bwd (ms):\n")
    print("| T | minGRU parallel (assoc. scan) | minGRU chunked (c = 64) | minGRU sequential "
          "| GRU sequential (custom VJP) | sequential / chunked |")
    print("|---|---|---|---|---|---|")
    for t in lengths:
        x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, h)).astype(np.float32))
        out = [time_layer(layer, x, repeats)
               for layer in (MinGRULayer(h, h, mode="parallel", rngs=nnx.Rngs(0)),
                             MinGRULayer(h, h, mode="chunked", rngs=nnx.Rngs(0)),
                             MinGRULayer(h, h, mode="sequential", rngs=nnx.Rngs(0)),
                             GRULayer(h, h, rngs=nnx.Rngs(0)))]
        cells = " | ".join(f"{f * 1e3:.1f} / {fb * 1e3:.1f}" for f, fb in out)
        print(f"| {t} | {cells} | {out[2][0] / out[1][0]:.2f}x / {out[2][1] / out[1][1]:.2f}x |",
              flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="*", default=["32x256x256", "32x256x512", "64x128x512"],
                   help="BxTxH shapes (input size F = H)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--mingru-lengths", nargs="*", type=int, default=[1024, 4096])
    p.add_argument("--quick", action="store_true", help="one small shape, 3 repeats")
    p.add_argument("--bidirectional", action="store_true",
                   help="time the fused bidirectional GRU layer against two scans instead "
                        "(shapes default to 32x256x256 32x256x512)")
    p.add_argument("--formulation", default="cudnn", choices=["cudnn", "cho"],
                   help="GRU formulation for --bidirectional")
    p.add_argument("--masked", action="store_true",
                   help="--bidirectional with random lengths in [T/2, T] (reversal by gather)")
    a = p.parse_args(argv)
    if a.bidirectional and a.shapes == p.get_default("shapes"):
        a.shapes = ["32x256x256", "32x256x512"]
    if a.quick:
        a.shapes, a.repeats, a.mingru_lengths = ["16x64x128"], 3, [512]
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes]
    dev = jax.devices()[0]
    if a.bidirectional:
        print(f"machine: {cpu_model()}, {os.cpu_count()} CPU cores, JAX {jax.__version__} on "
              f"{dev.platform} ({dev.device_kind}), {a.repeats} interleaved rounds\n")
        bidirectional_table(shapes, a.repeats, a.formulation, a.masked)
        return
    peak = matmul_gflops(a.repeats)
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPU cores, "
          f"JAX {jax.__version__} on {dev.platform} ({dev.device_kind}); "
          f"2048^3 f32 matmul: {peak:.0f} GFLOP/s\n")
    print("| B x T x H | implementation | fwd (ms) | fwd+bwd (ms) | fwd / grux | "
          "fwd+bwd / grux | fwd % of matmul peak | fwd+bwd % of peak |")
    print("|---|---|---|---|---|---|---|---|")
    gru_table(shapes, a.repeats, peak)
    if not a.mingru_lengths:
        return
    mingru_table(a.mingru_lengths, 32 if not a.quick else 8, 256 if not a.quick else 64,
                 a.repeats)


if __name__ == "__main__":
    main()
