#!/usr/bin/env python3
"""Whole training steps of the char-LM through grux's real train step, beside an equivalent
plain PyTorch loop (when ``torch`` is importable; it is never a dependency).

    python3 scripts/benchmark_train.py                       # 3 rounds of 10 steps each
    python3 scripts/benchmark_train.py --steps 20 --rounds 5 --hidden 256
    python3 scripts/benchmark_train.py --quick               # smoke run: tiny sizes

The model is ``configs/char_lm.py:tiny_shakespeare`` changed to the shape of the brief of
issue 15: character embedding 128 → one GRU layer of 512 units → softmax over the
characters, Adam (2e-3, cosine schedule), gradient clipping at global norm 1, batch 32,
BPTT 128, no dropout, the state carried from window to window, float32 (``--dtype
bfloat16``: grux computes in bfloat16 with float32 parameters and optimizer state). The GRU
is the cuDNN/PyTorch formulation (``--formulation cho`` for the config's default), so both sides
compute the same function.

grux: the config goes through the task, ``initial_state`` and
``grux.train.parallel.make_train_step`` exactly as ``grux.train`` builds them (one device,
``shard_map`` step with the metrics, the gradient norm and the optimizer update), fed the
task's own training batches and dispatched asynchronously as in the trainer.
PyTorch: ``nn.Embedding`` → ``nn.GRU`` (oneDNN on CPU, cuDNN on GPU) → ``nn.Linear``, mean
cross-entropy over the window's tokens, ``clip_grad_norm_(1.0)``, ``torch.optim.Adam``, the
state detached between windows, on the same batches.

PyTorch's OpenMP threads busy-wait at their barriers; on a 2-core machine that other jobs
load, that made a PyTorch step ~30x slower (11 s instead of 0.35 s measured here), so the
script sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (printed);
``--torch-threads`` sets ``torch.set_num_threads``.

Each round times ``--steps`` steps of grux then of PyTorch (after ``--warmup`` untimed steps
of each, compilation included there), so load drifting on a shared machine hits both alike;
medians over the rounds. Prints the CPU model, tokens/s of each and the ratio.

Any config, two variants (grux only):

    python3 scripts/benchmark_train.py --config configs/multi30k.py:en-de,small \
        --compare model.fuse_directions=True
    python3 scripts/benchmark_train.py --config configs/fsdd_digits.py \
        --set batch_size=16 --compare model.fuse_directions=True,model.unroll=2

``--config`` times the training step of ``FILE[:ARG]`` (with the ``--set`` overrides) beside
the same config with the ``--compare`` overrides applied on top, interleaved by rounds in one
process, and prints the items/s of each (the task's unit: tokens, frames, utterances) and
the ratio. Both variants see the same batches, after one untimed pass over them that
compiles every batch shape (length-bucketed tasks have several); ``--warmup`` is not used.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmark_rnn import cpu_model  # noqa: E402  (scripts/ is on sys.path when run)


def translate_config(a):
    """``configs/multi30k.py:en-de,small`` in the cuDNN formulation (the one PyTorch has)."""
    from grux.train.main import parse_config
    args = [f"--config={os.path.join(ROOT, 'configs/multi30k.py')}:en-de,small",
            "--config.model.formulation=cudnn", f"--config.model.dtype={a.dtype}"]
    if a.data_dir:
        args.append(f"--config.data_dir={a.data_dir}")
    return parse_config(args)


def make_config(a):
    from grux.train.main import load_config_file
    config = load_config_file(os.path.join(ROOT, "configs/char_lm.py:tiny_shakespeare"))
    m = config.model
    m.embed, m.hidden, m.num_layers, m.dropout = a.embed, a.hidden, 1, 0.0
    m.formulation, m.dtype = a.formulation, a.dtype
    config.task.bptt = a.bptt
    config.batch_size = a.batch
    if a.data_dir:
        config.data_dir = a.data_dir
    return config


class GruxLoop:
    """The trainer's step (as ``scripts/scaling_cpu.py`` builds it) on the task's batches."""

    def __init__(self, config):
        import jax
        from flax import nnx
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        from grux.tasks import get_task_class
        from grux.train import parallel
        from grux.train.config import validate
        from grux.train.trainer import initial_state

        self.jax, self.parallel = jax, parallel
        self.mesh = parallel.make_mesh()
        validate(config, device_count=self.mesh.devices.size)
        self.task = get_task_class(config.task.name)(config)
        _, graphdef, rest, state, tx, schedule = initial_state(config, self.task)
        rep = NamedSharding(self.mesh, P())
        split = NamedSharding(self.mesh, P(parallel.DATA_AXIS))
        self.state = {k: jax.device_put(v, split if k == "carry" else rep)
                      for k, v in state.items()}
        task = self.task

        def train_loss(p, batch, rng, carry):  # as grux.train.trainer._Trainer builds it
            return task.loss(nnx.merge(graphdef, p, rest), batch, rng=rng, carry=carry,
                             train=True)

        self.step = parallel.make_train_step(train_loss, tx, self.mesh, schedule,
                                             weight_noise=config.weight_noise)
        self.stream = task.train_stream(config.batch_size, 0, 1)
        self.losses: list = []

    def next_batch(self) -> dict:
        return next(self.stream)

    def run(self, batches) -> None:
        for b in batches:  # dispatched asynchronously, as in the trainer
            self.state, metrics = self.step(self.state,
                                            self.parallel.global_batch(b, self.mesh))
            self.losses.append(metrics["loss"])
        self.jax.block_until_ready(self.state)

    def mean_loss(self, last: int) -> float:
        pairs = self.parallel.to_host(self.losses[-last:])
        return float(sum(p[0] for p in pairs) / sum(p[1] for p in pairs))

    def items(self, last: int) -> float:
        """How many of the task's units (tokens, frames, utterances) the last ``last`` steps
        trained on: the loss's weights."""
        return float(sum(p[1] for p in self.parallel.to_host(self.losses[-last:])))


class TorchLoop:
    """The same model and update in plain PyTorch."""

    def __init__(self, torch, vocab: int, a, seed: int = 0):
        self.torch = torch
        torch.manual_seed(seed)
        nn = torch.nn
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.embed = nn.Embedding(vocab, a.embed).to(self.dev)
        self.rnn = nn.GRU(a.embed, a.hidden, batch_first=True).to(self.dev)
        self.head = nn.Linear(a.hidden, vocab).to(self.dev)
        self.params = [*self.embed.parameters(), *self.rnn.parameters(),
                       *self.head.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=2e-3)
        self.h = None
        self.losses: list[float] = []

    def run(self, batches) -> None:
        torch = self.torch
        for b in batches:
            x = torch.from_numpy(b["inputs"]).long().to(self.dev)
            y = torch.from_numpy(b["targets"]).long().to(self.dev)
            mask = torch.from_numpy(b["mask"]).to(self.dev)
            if self.h is not None:       # reset rows at an epoch start, else carry
                keep = (1.0 - torch.from_numpy(b["reset"]).to(self.dev))[None, :, None]
                self.h = self.h * keep
            out, h = self.rnn(self.embed(x), self.h)
            logits = self.head(out)
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                    y.reshape(-1), reduction="none")
            loss = (nll * mask.reshape(-1)).sum() / mask.sum()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.h = h.detach()
            self.losses.append(loss.detach())
        if self.dev == "cuda":
            torch.cuda.synchronize()

    def mean_loss(self, last: int) -> float:
        return float(sum(float(v) for v in self.losses[-last:]) / last)


def machine_line() -> str:
    import jax
    dev = jax.devices()[0]
    return (f"machine: {cpu_model()}, {os.cpu_count()} CPU cores; Python "
            f"{platform.python_version()}, JAX {jax.__version__} on {dev.platform} "
            f"({dev.device_kind})")


def _overrides(text: str) -> list[str]:
    return [f"--config.{kv}" for kv in text.split(",") if kv]


def compare_configs(a) -> None:
    """Two variants of one config's training step, interleaved by rounds (``--config``)."""
    from grux.train.main import parse_config
    base = [f"--config={a.config}", *_overrides(a.set)]
    if a.data_dir:
        base.append(f"--config.data_dir={a.data_dir}")
    variants = {"A": parse_config(base), "B": parse_config(base + _overrides(a.compare))}
    loops = {k: GruxLoop(c) for k, c in variants.items()}
    unit = getattr(loops["A"].task, "unit", "items")
    print(machine_line())
    print(f"{a.config} {a.set}: A = as set, B = A + {a.compare}; {a.rounds} rounds x "
          f"{a.steps} steps after one untimed pass over the same batches (compiles every "
          f"batch shape)\n", flush=True)
    batches = [loops["A"].next_batch() for _ in range(a.rounds * a.steps)]
    for loop in loops.values():   # one untimed pass: every batch shape compiled (buckets)
        loop.run(batches)
    times: dict[str, list[float]] = {k: [] for k in loops}
    items = []
    for r in range(a.rounds):
        bs = batches[r * a.steps:(r + 1) * a.steps]
        for k, loop in loops.items():
            t0 = time.perf_counter()
            loop.run(bs)
            times[k].append(time.perf_counter() - t0)
        items.append(loops["A"].items(a.steps))
    n = statistics.median(items)
    print(f"| variant | ms / step | {unit} / s | time / A | mean loss, last round |")
    print("|---|---|---|---|---|")
    ta = statistics.median(times["A"])
    for k, loop in loops.items():
        t = statistics.median(times[k])
        print(f"| {k} | {1e3 * t / a.steps:.1f} | {n / t:,.0f} | {t / ta:.2f} | "
              f"{loop.mean_loss(a.steps):.3f} |")
    print("\nper-round seconds: " + ", ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs)
                                             for k, vs in times.items()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=128)
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--formulation", default="cudnn", choices=["cudnn", "cho"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="grux's compute dtype (config.model.dtype; parameters and optimizer "
                        "state stay float32); PyTorch stays float32")
    p.add_argument("--data-dir", default="", help="raw data (default: ../shared/data)")
    p.add_argument("--no-torch", action="store_true", help="time grux only")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: batch 8, BPTT 32, hidden 64, 2 rounds of 3 steps")
    p.add_argument("--model", default="lm", choices=["lm", "translate"],
                   help="lm: the char-LM above; translate: configs/multi30k.py:en-de,small "
                        "(cuDNN formulation) beside scripts/torch_rnnsearch.py")
    p.add_argument("--config", default="",
                   help="FILE[:ARG]: time this config's training step instead (grux only)")
    p.add_argument("--set", default="", help="with --config: FIELD=VALUE,... for both variants")
    p.add_argument("--compare", default="",
                   help="with --config: FIELD=VALUE,... that make the second variant")
    a = p.parse_args(argv)
    if a.config:
        if not a.compare:
            p.error("--config needs --compare FIELD=VALUE,... (the second variant)")
        return compare_configs(a)
    if a.quick:
        a.batch, a.bptt, a.embed, a.hidden = 8, 32, 16, 64
        a.steps, a.rounds, a.warmup = 3, 2, 2

    torch = None
    if not a.no_torch:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # read when OpenMP starts
        try:
            import torch
        except ImportError:
            pass
        else:
            if a.torch_threads:
                torch.set_num_threads(a.torch_threads)
    if a.model == "translate":
        from torch_rnnsearch import TorchTranslateLoop
        config = translate_config(a)
        grux = GruxLoop(config)
        tl = (TorchTranslateLoop(torch, config.task.vocab_size, config.model, config.optimizer)
              if torch is not None else None)
        m = config.model
        what = (f"translation, Multi30k en-de (vocab {config.task.vocab_size}): RNNsearch "
                f"'small' (embed {m.embed}, bidirectional GRU {m.hidden}, decoder "
                f"{m.decoder_hidden}, cudnn; grux compute dtype {a.dtype}), Adam, clip "
                f"{config.optimizer.clip_norm:g}, batch {config.batch_size}, length-bucketed "
                f"sentences; {a.rounds} rounds x {a.steps} steps after one untimed pass over "
                f"the same batches")
    else:
        grux = GruxLoop(make_config(a))
        vocab = len(grux.task.vocab)
        tl = TorchLoop(torch, vocab, a) if torch is not None else None
        what = (f"char LM, tiny Shakespeare (vocab {vocab}): embed {a.embed}, GRU {a.hidden} "
                f"({a.formulation}; grux compute dtype {a.dtype}), Adam, clip 1, batch "
                f"{a.batch}, BPTT {a.bptt}; {a.rounds} rounds x {a.steps} steps after "
                f"{a.warmup} warm-up steps")
    print(machine_line() + (f", torch {torch.__version__} ({torch.get_num_threads()} "
                            f"threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})"
                            if torch else ", torch not importable (grux only)"))
    print(what + "\n", flush=True)

    def batches(n):
        return [grux.next_batch() for _ in range(n)]

    def timed(loop, bs):
        t0 = time.perf_counter()
        loop.run(bs)
        return time.perf_counter() - t0

    # translation batches come in several lengths: the untimed pass runs every timed batch
    # once, so that each shape is compiled (grux) and allocated (torch) before timing
    timed_batches = batches(a.rounds * a.steps)
    warm = timed_batches if a.model == "translate" else batches(a.warmup)
    t_compile = timed(grux, warm)
    if tl is not None:
        tl.run(warm)
    times = {"grux": [], "torch": []}
    tokens = []
    for r in range(a.rounds):
        bs = timed_batches[r * a.steps:(r + 1) * a.steps]
        times["grux"].append(timed(grux, bs))
        tokens.append(grux.items(a.steps))         # target tokens: the loss's weights
        if tl is not None:
            times["torch"].append(timed(tl, bs))
    tok = statistics.median(tokens)
    g = statistics.median(times["grux"])
    print("| implementation | ms / step | tokens / s | time / grux | mean loss, last round |")
    print("|---|---|---|---|---|")
    print(f"| grux (trainer step) | {1e3 * g / a.steps:.1f} | {tok / g:,.0f} | 1.00 | "
          f"{grux.mean_loss(a.steps):.3f} |")
    if tl is not None:
        t = statistics.median(times["torch"])
        print(f"| torch {torch.__version__} | {1e3 * t / a.steps:.1f} | {tok / t:,.0f} | "
              f"{t / g:.2f} | {tl.mean_loss(a.steps):.3f} |")
    print(f"\ngrux warm-up (compilation + {len(warm)} untimed steps): {t_compile:.1f} s; per-round "
          "seconds: " + ", ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs)
                                  for k, vs in times.items() if vs))


if __name__ == "__main__":
    main()
