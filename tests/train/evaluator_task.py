"""A test task with a host-side evaluator: the adding problem, whose evaluator rounds each
prediction to a thousandth on the host (as a decoder would produce tokens) and scores the
rounded predictions' mean absolute error against targets it regenerates itself."""
import jax
import numpy as np

from grux.data.stream import seeded_rng
from grux.data.synthetic import adding_problem
from grux.tasks.adding import AddingTask
from grux.tasks.base import Evaluator, register


class RoundedMAE(Evaluator):
    metrics = ("rounded_mae",)
    SPLIT_SEED = {"validation": 11, "test": 12}

    def __init__(self, task, examples: int = 40):
        self.task, self.examples = task, examples
        self.calls: list[tuple[str, int, int]] = []  # (split, first index, count)
        self._data = {s: adding_problem(seeded_rng(task.config.seed, k, 0), examples,
                                        task.config.task.length)
                      for s, k in self.SPLIT_SEED.items()}

    def splits(self):
        return ("validation", "test")

    def num_examples(self, split):
        return self.examples

    def predict(self, model, split, indices):
        self.calls.append((split, indices.start, len(indices)))
        x = self._data[split][0][indices.start:indices.stop]
        y_hat = np.asarray(jax.jit(lambda m, x: m(x))(model, x))
        return [[int(round(1000 * v))] for v in y_hat]

    def score(self, split, predictions):
        y = self._data[split][1][:len(predictions)]
        p = np.asarray([s[0] for s in predictions]) / 1000.0
        return {"rounded_mae": float(np.mean(np.abs(p - y)))}


@register
class DecodedAddingTask(AddingTask):
    name = "test_decoded_adding"

    @staticmethod
    def default_config():
        c = AddingTask.default_config()
        c.task.name = "test_decoded_adding"
        return c

    def __init__(self, config):
        super().__init__(config)
        self.evaluator = RoundedMAE(self)

    def evaluators(self):
        return [self.evaluator]
