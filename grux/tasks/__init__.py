"""Tasks: model + data streams + loss + metrics for one experiment type (see ``base.Task``).

Importing this package registers the built-in tasks.
"""
from grux.tasks import adding, copy, echo, lm, music, translate  # noqa: F401  (registration)
from grux.tasks import forecast  # noqa: F401  (registration)
from grux.tasks.speech import connected, digits, librispeech  # noqa: F401  (registration)
from grux.tasks.base import Evaluator, Task, get_task_class, register, task_names, weighted

__all__ = ["Evaluator", "Task", "get_task_class", "register", "task_names", "weighted"]
