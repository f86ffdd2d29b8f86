"""One process of a multi-process run: ``multihost_worker.py WORKDIR PORT NPROC PID``.

Runs the tiny echo config through ``train_and_evaluate`` with ``jax.distributed`` on
127.0.0.1 and prints this process's view of the results as one JSON line."""
import json
import sys

from grux.train import base_config, train_and_evaluate


def tiny_config():
    c = base_config("echo")
    c.model.hidden, c.batch_size, c.num_train_steps = 16, 8, 12
    c.task.window, c.task.delay, c.task.eval_windows = 10, 3, 2
    c.eval.every_steps, c.checkpoint.every_steps, c.log.every_steps = 6, 6, 1
    c.log.tensorboard, c.log.progress = False, False
    c.optimizer.learning_rate = 1e-2
    return c


def main(workdir, port, nproc, pid):
    c = tiny_config()
    if int(nproc) > 1:
        c.distributed.coordinator_address = f"127.0.0.1:{port}"
        c.distributed.num_processes, c.distributed.process_id = int(nproc), int(pid)
    s = train_and_evaluate(c, workdir)
    s["train"].pop("items_per_second")  # wall-clock, differs per process
    print(json.dumps({"processes": s["processes"], "devices": s["devices"],
                      "train": s["train"], "final": s["final"], "step": s["step"]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
