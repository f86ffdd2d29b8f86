"""One process of a multi-process run: ``multihost_worker.py WORKDIR PORT NPROC PID``.

Runs the tiny echo config through ``train_and_evaluate`` with ``jax.distributed`` on
127.0.0.1 and prints this process's view of the results as one JSON line."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # evaluator_task

from grux.train import base_config, train_and_evaluate


def tiny_config():
    c = base_config("echo")
    c.model.hidden, c.batch_size, c.num_train_steps = 16, 8, 12
    c.task.window, c.task.delay, c.task.eval_windows = 10, 3, 2
    c.eval.every_steps, c.checkpoint.every_steps, c.log.every_steps = 6, 6, 1
    c.log.tensorboard, c.log.progress = False, False
    c.optimizer.learning_rate = 1e-2
    return c


def decoded_config():
    from evaluator_task import DecodedAddingTask  # noqa: F401  (registers the task)
    c = base_config("test_decoded_adding")
    c.task.length, c.task.eval_examples, c.model.hidden = 12, 64, 16
    c.batch_size, c.num_train_steps = 16, 10
    c.eval.every_steps, c.checkpoint.every_steps, c.log.every_steps = 10, 10, 5
    c.log.tensorboard, c.log.progress = False, False
    return c


def main(workdir, port, nproc, pid, which="echo"):
    c = tiny_config() if which == "echo" else decoded_config()
    if int(nproc) > 1:
        c.distributed.coordinator_address = f"127.0.0.1:{port}"
        c.distributed.num_processes, c.distributed.process_id = int(nproc), int(pid)
    decoded = []
    if which != "echo":  # record which examples this process's evaluator decoded
        from grux.tasks import get_task_class
        cls, init = get_task_class(c.task.name), get_task_class(c.task.name).__init__

        def recording_init(self, config):
            init(self, config)
            decoded.append(self.evaluator.calls)
        cls.__init__ = recording_init
    s = train_and_evaluate(c, workdir)
    s["train"].pop("items_per_second")  # wall-clock, differs per process
    print(json.dumps({"processes": s["processes"], "devices": s["devices"],
                      "train": s["train"], "final": s["final"], "step": s["step"],
                      "decoded": sorted(set(map(tuple, decoded[0]))) if decoded else None}))


if __name__ == "__main__":
    main(*sys.argv[1:])
