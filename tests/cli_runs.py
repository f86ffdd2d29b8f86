"""Helpers for tests that run the trainer as a user would: ``python -m grux.train`` in a
subprocess (own XLA device count, real signals), and read its checkpoints back."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def experiment_config(name: str, arg: str = ""):
    """``configs/<name>.py``'s ``get_config(arg)`` called directly (no flag parsing, so an
    invalid ``arg`` raises the config file's own error)."""
    import importlib.util
    path = ROOT / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"configs.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)

# A tiny echo (truncated-BPTT) run: carried state, 2 layers with dropout and weight noise
# (RNG), ~3 s a run.
TINY_ECHO = ["--config.weight_noise=0.01", "--config.model.hidden=16",
             "--config.model.num_layers=2",
             "--config.model.dropout=0.1", "--config.batch_size=8", "--config.task.window=10",
             "--config.task.delay=3", "--config.task.eval_windows=2",
             "--config.eval.every_steps=20", "--config.log.every_steps=5",
             "--config.checkpoint.every_steps=5", "--config.checkpoint.keep=50",
             "--config.log.tensorboard=False"]


def env(devices: int = 1) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def command(workdir, *overrides, config: str = "configs/echo.py") -> list[str]:
    return [sys.executable, "-m", "grux.train", f"--config={ROOT / config}",
            f"--workdir={workdir}", *overrides]


def run(workdir, *overrides, config: str = "configs/echo.py", devices: int = 1,
        check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(command(workdir, *overrides, config=config), env=env(devices),
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if check:
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def start(workdir, *overrides, config: str = "configs/echo.py", devices: int = 1,
          log=None) -> subprocess.Popen:
    return subprocess.Popen(command(workdir, *overrides, config=config), env=env(devices),
                            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            cwd=ROOT)


def saved_steps(workdir) -> list[int]:
    d = Path(workdir) / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def wait_for_step(workdir, step: int, proc: subprocess.Popen, timeout: float = 300) -> int:
    """Block until a finalised checkpoint at ``>= step`` exists; return the newest."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        steps = [s for s in saved_steps(workdir)
                 if (Path(workdir) / "checkpoints" / str(s) / "_CHECKPOINT_METADATA").exists()]
        if steps and steps[-1] >= step:
            return steps[-1]
        assert proc.poll() is None, f"trainer exited early with {proc.returncode}"
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint >= {step} in {workdir}")


def checkpoint_state(workdir, step: int | None = None) -> dict:
    """The saved train state (NumPy leaves, flattened to dotted names) of a checkpoint."""
    import jax
    import orbax.checkpoint as ocp
    mgr = ocp.CheckpointManager(Path(workdir) / "checkpoints", item_handlers={
        "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})
    step = mgr.latest_step() if step is None else step
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # any saved topology → here
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
                          mgr.item_metadata(step)["state"])
    state = mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))["state"]
    mgr.close()
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), f"{k} differs (max |Δ| = " \
            f"{np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))})"


def tiny_echo(steps=30, **fields):
    """A tiny in-process echo config; ``fields`` override ``section__field=value``."""
    from grux.train import base_config
    c = base_config("echo")
    c.model.hidden, c.batch_size, c.num_train_steps = 16, 8, steps
    c.task.window, c.task.delay, c.task.eval_windows = 10, 3, 2
    c.eval.every_steps, c.checkpoint.every_steps, c.log.every_steps = 10, 10, 5
    c.checkpoint.keep, c.log.tensorboard, c.log.progress = 10, False, False
    for dotted, v in fields.items():
        node = c
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return c


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multihost_runs(tmp_path, *worker_args, devices_per_process: int = 1):
    """``tests/train/multihost_worker.py`` as 2 processes on 127.0.0.1 and as 1 process with
    all their devices; returns (the 2 processes' JSON views, the single process's view)."""
    import json
    worker = str(ROOT / "tests/train/multihost_worker.py")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, worker, str(tmp_path / "multi"), str(port), "2",
                               str(i), *worker_args], env=env(devices_per_process),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-4000:]
    views = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    single = subprocess.run([sys.executable, worker, str(tmp_path / "single"), "0", "1", "0",
                             *worker_args], env=env(2 * devices_per_process),
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]
    return views, json.loads(single.stdout.strip().splitlines()[-1])
