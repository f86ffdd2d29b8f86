"""Cluster launches without a cluster (docs/clusters.md): processes started with the
variables SLURM gives its tasks, so ``--config.distributed.coordinator_address=auto`` runs
JAX's real SLURM detection (``jax._src.clusters.SlurmCluster``: SLURM_JOB_ID, SLURM_NTASKS,
SLURM_PROCID, SLURM_LOCALID, SLURM_STEP_NODELIST); how the global batch is split over
processes; which process writes what; and what happens when a process dies or hangs.

JAX derives the coordinator port from the job id (``61440 + SLURM_JOB_ID % 4096``), so each
test picks a job id whose port is free on this machine."""
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_runs import (ROOT, TINY_ECHO, checkpoint_state, command, env, run, saved_steps,
                      wait_for_step)
from grux.train import base_config, parallel
from grux.train.config import ConfigError, validate
from grux.train.writers import read_metrics

SLURM_PORT_BASE = 65535 - 2**12 + 1  # jax's SlurmCluster: port = base + SLURM_JOB_ID % 4096
CLUSTER_VARS = ("SLURM_", "OMPI_", "PMI_", "PMIX_", "JAX_COORDINATOR", "JAX_LOCAL_DEVICE",
                "JAX_PROCESS", "JAX_NUM_PROCESSES", "KUBERNETES_", "TPU_", "CLOUD_TPU")
# the 12-step echo run of test_parallel.py: no dropout, a loss curve logged at every step
DP = [o for o in TINY_ECHO if "dropout" not in o] + [
    "--config.num_train_steps=12", "--config.log.every_steps=1",
    "--config.eval.every_steps=6", "--config.optimizer.learning_rate=1e-2"]
AUTO = "--config.distributed.coordinator_address=auto"


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` (JAX's coordinator binds ``[::]:port``)."""
    for family, host in ((socket.AF_INET6, "::"), (socket.AF_INET, "127.0.0.1")):
        try:
            with socket.socket(family) as s:
                s.bind((host, port))
        except OSError:
            if family == socket.AF_INET6 and not socket.has_ipv6:
                continue
            return False
    return True


def slurm_job_id() -> int:
    """A SLURM_JOB_ID whose coordinator port is free now (unseeded: parallel test runs must
    not all pick the same one)."""
    pick = random.Random()
    for _ in range(200):
        port = pick.randrange(SLURM_PORT_BASE, 65536)
        if _port_free(port):
            return 4096 * 1234 + (port - SLURM_PORT_BASE)
    pytest.skip("no free port in JAX's SLURM range 61440-65535")


def slurm_env(job_id: int, ntasks: int, procid: int, devices: int = 1) -> dict:
    """The environment ``srun`` gives task ``procid`` of a one-node job step (what JAX reads
    and the neighbours a real step has), over cli_runs.env (CPU, ``devices`` forced)."""
    e = {k: v for k, v in env(devices).items() if not k.startswith(CLUSTER_VARS)}
    e.update(SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id), SLURM_STEP_ID="0",
             SLURM_NTASKS=str(ntasks), SLURM_NPROCS=str(ntasks),
             SLURM_STEP_NUM_TASKS=str(ntasks), SLURM_NTASKS_PER_NODE=str(ntasks),
             SLURM_TASKS_PER_NODE=str(ntasks), SLURM_PROCID=str(procid),
             SLURM_LOCALID=str(procid), SLURM_NODEID="0", SLURM_NNODES="1",
             SLURM_STEP_NUM_NODES="1", SLURM_JOB_NUM_NODES="1",
             SLURM_STEP_NODELIST="localhost", SLURM_JOB_NODELIST="localhost",
             SLURM_NODELIST="localhost")
    return e


def start_tasks(cmd: list[str], tmp_path, devices: int = 1, ntasks: int = 2):
    """``ntasks`` processes of ``cmd`` as one SLURM job step; stdout+stderr to files."""
    job = slurm_job_id()
    procs, logs = [], []
    for i in range(ntasks):
        logs.append(tmp_path / f"task{i}.log")
        with open(logs[-1], "w") as log:
            procs.append(subprocess.Popen(cmd, env=slurm_env(job, ntasks, i, devices),
                                          stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    return procs, logs


def stop_all(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def tfrecord_count(path) -> int:
    """Records in a TensorBoard event file (TFRecord framing: u64 length, u32 crc, data,
    u32 crc)."""
    data, n, at = path.read_bytes(), 0, 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        at += 8 + 4 + length + 4
        n += 1
    assert at == len(data), path
    return n


def _records(workdir):
    return [{k: v for k, v in r.items() if k not in ("time", "items_per_second")}
            for r in read_metrics(workdir)]


# srun for the tests: runs its command once per task of a one-node job, with the variables
# srun gives each task, each task's output in $FAKE_SRUN_LOGS/task<i>.log; FAKE_SRUN_ECHO=1
# prints the command instead
FAKE_SRUN = """#!/bin/bash
while [[ "$1" == -* ]]; do shift; done
if [[ -n "${FAKE_SRUN_ECHO:-}" ]]; then echo "$@"; exit 0; fi
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 SLURM_STEP_ID=0 \\
  SLURM_STEP_NODELIST=$SLURM_JOB_NODELIST SLURM_STEP_NUM_NODES=1 \\
  SLURM_STEP_NUM_TASKS=$SLURM_NTASKS "$@" > "$FAKE_SRUN_LOGS/task$i.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""


def sbatch_env(tmp_path, ntasks: int, per_node: int, **extra) -> dict:
    """What the batch script of a one-node job sees (no task variables: srun sets those),
    with the fake srun first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    e = {k: v for k, v in env(1).items() if not k.startswith(CLUSTER_VARS)}
    job = slurm_job_id()
    e.update(SLURM_JOB_ID=str(job), SLURM_JOBID=str(job), SLURM_NTASKS=str(ntasks),
             SLURM_NPROCS=str(ntasks), SLURM_NTASKS_PER_NODE=str(per_node),
             SLURM_JOB_NODELIST="localhost", SLURM_NODELIST="localhost", SLURM_NNODES="1",
             SLURM_JOB_NUM_NODES="1", PATH=f"{bin_dir}:{e['PATH']}", PYTHON=sys.executable,
             FAKE_SRUN_LOGS=str(tmp_path), **extra)
    return e


def test_slurm_script_runs_a_job_that_trains_like_one_process(tmp_path):
    """scripts/slurm_train.sbatch with 2 tasks × 1 CPU device (coordinator_address=auto,
    JAX's SLURM detection), against 1 process × 2 devices: the same metrics and
    parameters; both processes joined with the right index; only process 0 wrote logs (no
    record twice), both wrote their part of each checkpoint."""
    wd = tmp_path / "slurm"
    tb = "--config.log.tensorboard=True"
    job = subprocess.Popen(["bash", str(ROOT / "scripts/slurm_train.sbatch"), "configs/echo.py",
                            str(wd), *DP, tb], env=sbatch_env(tmp_path, 2, 2), cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        run(tmp_path / "one", *DP, tb, devices=2)  # meanwhile: the reference
        script_out = job.communicate(timeout=300)[0]
    finally:
        if job.poll() is None:  # the script and its tasks
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    logs = [tmp_path / f"task{i}.log" for i in range(2)]
    assert job.returncode == 0, script_out + logs[0].read_text()[-3000:] + \
        logs[1].read_text()[-3000:]
    out = [log.read_text() for log in logs]
    for i in range(2):
        assert f"grux: process {i} of 2 on {socket.gethostname()}: 1 of 2 devices (cpu)" \
            in out[i]
    # process 1 prints only its own start line: no progress, evaluation or summary
    assert "completed at step 12/12" in out[0]
    assert not any(s in out[1] for s in ("step 1/12", "[eval step", "completed", "workdir"))

    summary = json.loads((wd / "summary.json").read_text())
    assert (summary["processes"], summary["devices"], summary["status"]) == (2, 2, "completed")
    ref = json.loads((tmp_path / "one" / "summary.json").read_text())
    for split, metrics in ref["final"].items():
        for k, v in metrics.items():
            assert summary["final"][split][k] == pytest.approx(v, rel=1e-5), (split, k)
    got, want = _records(wd), _records(tmp_path / "one")
    assert [(r["step"], r.get("split"), r.get("event")) for r in got] == \
        [(r["step"], r.get("split"), r.get("event")) for r in want]  # none twice
    for a, b in zip(got, want):
        for k, v in b.items():
            if isinstance(v, float):
                assert a[k] == pytest.approx(v, rel=1e-5), (b["step"], k)
    events = list((wd / "tensorboard").glob("events.out.tfevents.*"))
    ref_events = list((tmp_path / "one" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == len(ref_events) == 1
    assert tfrecord_count(events[0]) == tfrecord_count(ref_events[0])
    assert len((wd / "config_history.jsonl").read_text().splitlines()) == 1

    # every process takes part in each checkpoint: process 1 writes its rows of the carry
    assert saved_steps(wd) == [5, 10, 12]
    for step in saved_steps(wd):
        state = wd / "checkpoints" / str(step) / "state"
        assert (state / "ocdbt.process_0").is_dir() and (state / "ocdbt.process_1").is_dir()
    a, b = checkpoint_state(tmp_path / "one"), checkpoint_state(wd)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("per_node,gpus,ids", [(8, "8", None), (1, "4", "0,1,2,3"),
                                                 (1, None, None)])
def test_slurm_script_gives_a_task_per_host_all_its_gpus(tmp_path, per_node, gpus, ids):
    """One task per host: the script passes local_device_ids 0..G-1 (JAX's SLURM default
    would give the task GPU 0 only); one task per GPU: it leaves JAX's default."""
    extra = {"FAKE_SRUN_ECHO": "1", **({"SLURM_GPUS_ON_NODE": gpus} if gpus else {})}
    out = subprocess.run(["bash", str(ROOT / "scripts/slurm_train.sbatch"), "configs/echo.py",
                          "/shared/runs/x", "--config.seed=3"],
                         env=sbatch_env(tmp_path, per_node, per_node, **extra),
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    assert out[:5] == [sys.executable, "-m", "grux.train", "--config", "configs/echo.py"]
    assert out[5:] == ["--workdir", "/shared/runs/x",
                       "--config.distributed.coordinator_address=auto",
                       *([f"--config.distributed.local_device_ids={ids}"] if ids else []),
                       "--config.seed=3"]


def test_each_process_gets_its_rows_of_the_global_batch(tmp_path):
    """2 SLURM tasks × 2 devices: process p reads rows [4p, 4p+4) of every 8-row global
    batch (BatchStream and the task's own train/eval streams), its devices hold 2 rows
    each, in order, and the global array gathers back to the whole batch."""
    procs, logs = start_tasks([sys.executable, str(ROOT / "tests/train/cluster_worker.py")],
                              tmp_path, devices=2)
    try:
        for p in procs:
            p.wait(timeout=300)
    finally:
        stop_all(procs)
    for i, (p, log) in enumerate(zip(procs, logs)):
        out = log.read_text()
        assert p.returncode == 0, out[-3000:]
        view = json.loads(out.strip().splitlines()[-1])
        assert (view["process_index"], view["process_count"]) == (i, 2)
        assert (view["local_devices"], view["devices"]) == (2, 4)
        assert view["local_rows"] == [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]
        # per device: first row, last row, its slice of the global array, content matches
        assert view["shards"] == [[4 * i, 4 * i + 1, 4 * i, 4 * i + 2, True],
                                  [4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 4, True]]
        assert view["gathered_ok"] and view["train_ok"] and view["eval_ok"]


def test_killed_process_stops_the_other_and_its_checkpoints_resume(tmp_path):
    """SIGKILL process 1 mid-run: process 0 exits at once (its next collective fails) with
    one line naming the cause, exit status 1; the checkpoints written so far restore, and
    a single process resumes from the newest."""
    wd = tmp_path / "run"
    args = [*TINY_ECHO, "--config.num_train_steps=100000", "--config.eval.every_steps=1000"]
    procs, logs = start_tasks(command(wd, *args, AUTO,
                                      "--config.distributed.heartbeat_timeout=10"), tmp_path)
    try:
        reached = wait_for_step(wd, 5, procs[0], timeout=240)
        procs[1].send_signal(signal.SIGKILL)
        t0 = time.time()
        rc = procs[0].wait(timeout=120)
        seconds = time.time() - t0
    finally:
        stop_all(procs)
    out = logs[0].read_text()
    assert rc == 1, out[-3000:]
    assert seconds < 30, seconds  # measured 0.1-0.2 s: gloo sees the connection reset
    # the one line is grux's. The runtime's own C++ log records may come beside it when
    # process 0 was slow to notice under load (the coordination service reporting the lost
    # task); they are not counted, and their continuation lines carry no glog prefix (CI
    # saw "The tasks have crashed. Check the task logs for an earlier error, ..." and
    # "RPC: .../PollForError"), so grux's lines are told apart by their own prefix
    errors = [line for line in out.splitlines() if line.startswith("grux-train: error")]
    assert len(errors) == 1, out[-6000:]
    assert errors[0].startswith("grux-train: error: process 0 of 2: a computation failed "
                                "(in a multi-process run most often because another process "
                                "died or lost contact: see its log): ")
    assert f"The checkpoints in {wd} are kept" in errors[0]
    assert "Traceback" not in out and "Check failure" not in out

    newest = saved_steps(wd)[-1]
    assert newest >= reached
    checkpoint_state(wd, newest)  # restores (checksums are checked on resume below)
    resumed = run(wd, *args, f"--config.num_train_steps={newest + 5}", devices=2)
    assert f"resumed from checkpoint {wd / 'checkpoints' / str(newest)} (step {newest})" \
        in resumed.stdout
    assert json.loads((wd / "summary.json").read_text())["step"] == newest + 5


def test_hung_process_is_declared_dead_after_the_heartbeat_timeout(tmp_path):
    """SIGSTOP process 1 (a hung host: its connections stay open, so no collective fails):
    JAX's coordination service on process 0 declares it dead once it has sent no
    heartbeat for distributed.heartbeat_timeout seconds and aborts process 0 (SIGABRT, JAX's
    multi-line fatal log), or a collective waiting on process 1 fails first (grux's one
    line, exit 1): bounded, not forever."""
    wd, timeout = tmp_path / "run", 8
    args = [*TINY_ECHO, "--config.num_train_steps=100000", "--config.eval.every_steps=1000"]
    procs, logs = start_tasks(command(wd, *args, AUTO,
                                      f"--config.distributed.heartbeat_timeout={timeout}"),
                              tmp_path)
    try:
        wait_for_step(wd, 5, procs[0], timeout=240)
        procs[1].send_signal(signal.SIGSTOP)
        t0 = time.time()
        rc = procs[0].wait(timeout=120)
        seconds = time.time() - t0
    finally:
        stop_all(procs)  # SIGKILL ends a stopped process too
    out = logs[0].read_text()
    assert seconds < timeout + 15, seconds  # measured 6.6 s with a 10 s timeout
    # Which of two ends comes first is a race: JAX's error poller aborts the process, or a
    # collective already waiting (e.g. the checkpoint barrier) fails first and grux exits
    # with its one line. Both are bounded by the heartbeat timeout.
    if rc == 1:
        assert "grux-train: error: process 0 of 2: a computation failed" in out, out[-3000:]
        assert "heartbeat timeout" in out
    else:
        assert rc == -signal.SIGABRT, out[-3000:]
        assert "stopped sending heartbeats" in out
        assert "Terminating process because the JAX distributed service detected fatal " \
            "errors" in out
    assert saved_steps(wd)  # what was saved stays


def test_an_error_in_one_process_ends_the_job_at_once(tmp_path):
    """The workdir is locked by another run: only process 0 (which takes the lock) fails. It
    prints its one line and exits 1 at once, instead of waiting at JAX's shutdown barrier
    for process 1 (distributed.shutdown_timeout, 300 s by default; it did before); process 1
    then ends too (JAX aborts it: its coordinator is gone)."""
    import fcntl
    wd = tmp_path / "run"
    wd.mkdir()
    with open(wd / ".grux.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another grux-train on this workdir would
        procs, logs = start_tasks(command(wd, *DP, AUTO), tmp_path)
        try:
            rc0 = procs[0].wait(timeout=240)
            t0 = time.time()
            rc1 = procs[1].wait(timeout=120)
            seconds = time.time() - t0
        finally:
            stop_all(procs)
    out = logs[0].read_text()
    assert rc0 == 1, out[-3000:]
    assert out.splitlines()[-1].startswith(f"grux-train: error: workdir {wd} is in use by "
                                           "another grux-train")
    assert rc1 != 0 and seconds < 30, (rc1, seconds, logs[1].read_text()[-3000:])


def test_auto_without_a_cluster_is_one_line(tmp_path):
    e = {k: v for k, v in env(1).items() if not k.startswith(CLUSTER_VARS)}
    out = subprocess.run(command(tmp_path / "run", *DP, AUTO), env=e, capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "grux-train: error: config.distributed.coordinator_address='auto', but JAX detects "
        "no cluster here (SLURM: launch with srun"), out.stderr
    assert not (tmp_path / "run").exists()


def test_missing_processes_end_after_the_initialization_timeout(tmp_path):
    """Task 1 of 2 started alone: JAX gives up connecting after
    distributed.initialization_timeout seconds and aborts (DEADLINE_EXCEEDED)."""
    e = slurm_env(slurm_job_id(), 2, 1)
    t0 = time.time()
    out = subprocess.run(command(tmp_path / "run", *DP, AUTO,
                                 "--config.distributed.initialization_timeout=3"),
                         env=e, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == -signal.SIGABRT, out.stderr[-3000:]
    assert "DEADLINE_EXCEEDED" in out.stderr and "RegisterTask" in out.stderr
    assert time.time() - t0 < 60


@pytest.mark.parametrize("field,value,words", [
    ("coordinator_address", "node001", "must be '', 'auto' or 'host:port'"),
    ("coordinator_address", "node001:99999", "must be '', 'auto' or 'host:port'"),
    ("local_device_ids", "0,a", "device numbers separated by commas"),
    ("initialization_timeout", 0, "must be >= 1 (seconds)"),
    ("heartbeat_timeout", -5, "must be >= 1 (seconds)"),
    ("shutdown_timeout", 0, "must be >= 1 (seconds)"),
])
def test_bad_distributed_fields_are_named(field, value, words):
    c = base_config("echo")
    if field != "coordinator_address":
        c.distributed.coordinator_address = "auto"
    c.distributed[field] = value
    with pytest.raises(ConfigError, match=f"^config.distributed.{field} ") as e:
        validate(c)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_auto_leaves_process_count_and_index_to_the_cluster():
    c = base_config("echo")
    c.distributed.coordinator_address, c.distributed.process_id = "auto", 1
    with pytest.raises(ConfigError, match=r"config.distributed.process_id must be left unset"):
        validate(c)
    c.distributed.process_id = -1
    validate(c)


def test_config_reaches_jax_distributed_initialize(monkeypatch):
    """The fields as JAX receives them (the real calls run in the subprocess tests above)."""
    import jax
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    d = base_config("echo").distributed
    parallel.initialize_distributed(d)
    assert calls == []  # no coordinator: one process, nothing to initialize
    d.coordinator_address, d.local_device_ids = "auto", "0, 1,2,3"
    d.initialization_timeout, d.heartbeat_timeout, d.shutdown_timeout = 60, 20, 30
    parallel.initialize_distributed(d)
    d.coordinator_address, d.num_processes, d.process_id = "10.0.0.1:1234", 4, 3
    d.local_device_ids = ""
    parallel.initialize_distributed(d)
    timeouts = dict(initialization_timeout=60, heartbeat_timeout_seconds=20,
                    shutdown_timeout_seconds=30)
    assert calls == [dict(local_device_ids=[0, 1, 2, 3], **timeouts),
                     dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3,
                          local_device_ids=None, cluster_detection_method="deactivate",
                          **timeouts)]


def test_slurm_port_base_matches_jax():
    """The job-id → port rule the tests rely on is the one of the installed JAX."""
    from jax._src.clusters import SlurmCluster
    with pytest.MonkeyPatch.context() as m:
        for k in list(os.environ):
            if k.startswith(CLUSTER_VARS):
                m.delenv(k)
        m.setenv("SLURM_JOB_ID", str(4096 * 7 + 5))
        m.setenv("SLURM_STEP_NODELIST", "node[003-007],gpu12")
        assert SlurmCluster.get_coordinator_address(None, None) == \
            f"node003:{SLURM_PORT_BASE + 5}"
