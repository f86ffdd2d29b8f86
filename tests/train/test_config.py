"""Configs: every experiment file loads and validates; unknown fields, wrong types and
impossible values fail at start-up naming the field; command-line overrides work."""
from pathlib import Path

import ml_collections
import numpy as np
import optax
import pytest

from grux.train import ConfigError, base_config, validate
from grux.train.main import UsageError, parse_config
from grux.train.optim import make_optimizer, make_schedule

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.py"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_file_loads_validates_and_documents_its_command(path):
    config = parse_config([f"--config={path}"])
    validate(config, device_count=1)
    text = path.read_text()
    assert "python -m grux.train --config configs/" in text, "docstring must give the command"


def test_default_config_is_the_adding_problem_at_T200():
    c = parse_config([])
    assert (c.task.name, c.task.length, c.model.cell) == ("adding", 200, "gru")
    validate(c, device_count=1)


def test_overrides_from_the_command_line():
    c = parse_config([f"--config={ROOT / 'configs/adding.py'}:tanh", "--config.model.hidden=7",
                      "--config.optimizer.name=rmsprop"])
    assert (c.model.cell, c.model.hidden, c.optimizer.name) == ("tanh", 7, "rmsprop")


def test_unknown_override_field_is_an_error_naming_it():
    with pytest.raises(UsageError, match=r"^--config\.model\.hiden: unknown field; did you "
                                         r"mean config\.model\.hidden\?$"):
        parse_config(["--config.model.hiden=3"])


def test_override_of_wrong_type_is_an_error_naming_it():
    with pytest.raises(UsageError, match="config.model.hidden=abc"):
        parse_config(["--config.model.hidden=abc"])


def test_field_of_another_task_names_that_task():
    c = ml_collections.ConfigDict(base_config("forecast").to_dict())
    c.task.name = "lm"
    with pytest.raises(ConfigError, match=r"config\.(task|model)\.\w+ is a field of task "
                                          r"'forecast', not of task 'lm'"):
        validate(c)


def test_base_config_is_locked_and_typed():
    c = base_config("adding")
    with pytest.raises(AttributeError):
        c.model.hiden = 3
    with pytest.raises(TypeError):
        c.batch_size = "64"


def test_unknown_field_in_a_hand_built_config_is_named_with_a_suggestion():
    c = ml_collections.ConfigDict(base_config("adding").to_dict())
    c.optimizer.learning_rat = 0.1
    with pytest.raises(ConfigError, match=r"config\.optimizer\.learning_rat: unknown field; "
                                          r"did you mean config\.optimizer\.learning_rate"):
        validate(c)


def test_wrong_type_and_missing_field_in_a_hand_built_config():
    d = base_config("adding").to_dict()
    d["num_train_steps"] = "many"
    with pytest.raises(ConfigError, match=r"config\.num_train_steps: expected int, got str"):
        validate(ml_collections.ConfigDict(d))
    d = base_config("adding").to_dict()
    del d["eval"]["patience"]
    with pytest.raises(ConfigError, match=r"config\.eval\.patience: missing field"):
        validate(ml_collections.ConfigDict(d))


@pytest.mark.parametrize("field,value,message", [
    ("optimizer.learning_rate", -1.0, r"config\.optimizer\.learning_rate must be positive"),
    ("optimizer.name", "adamax", r"config\.optimizer\.name must be one of"),
    ("batch_size", 0, r"config\.batch_size must be >= 1"),
    ("eval.mode", "lowest", r"config\.eval\.mode must be 'min' or 'max'"),
    ("optimizer.ema_decay", 1.0, r"config\.optimizer\.ema_decay must be in \[0, 1\)"),
    ("model.cell", "transformer", r"config\.model\.cell must be one of"),
    ("model.dropout", 1.0, r"config\.model\.dropout must be in \[0, 1\)"),
    ("task.length", 1, r"config\.task\.length must be >= 2"),
    ("task.name", "imagenet", r"config\.task\.name: unknown task 'imagenet'"),
])
def test_impossible_values_are_named(field, value, message):
    c = ml_collections.ConfigDict(base_config("adding").to_dict())
    section, _, leaf = field.rpartition(".")
    (c[section] if section else c)[leaf] = value
    with pytest.raises(ConfigError, match=message):
        validate(c)


def test_batch_must_divide_over_devices():
    c = base_config("adding")
    c.batch_size = 12
    validate(c, device_count=4)
    with pytest.raises(ConfigError, match=r"config\.batch_size=12 is not divisible by the 8"):
        validate(c, device_count=8)
    c.batch_size, c.eval.batch_size = 16, 12
    with pytest.raises(ConfigError, match=r"config\.eval\.batch_size=12"):
        validate(c, device_count=8)


def _numpy_optimizer(name, lr, o, theta, steps):
    """The textbook update rules (optax's conventions) for ``loss = Σθ²`` (gradient 2θ)."""
    theta = theta.astype(np.float64)
    m = v = t_ = ex = np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = 2 * theta
        if name != "adamw":
            g = g + o["weight_decay"] * theta                      # L2 added to the gradient
        if name == "sgd":
            t_ = g + o["momentum"] * t_
            u = -lr * ((g + o["momentum"] * t_) if o["nesterov"] else t_)
        elif name == "rmsprop":
            v = o["rho"] * v + (1 - o["rho"]) * g ** 2
            t_ = -lr * g / np.sqrt(v + o["eps"]) + o["momentum"] * t_  # optax: eps in sqrt
            u = t_
        elif name == "adadelta":
            v = o["rho"] * v + (1 - o["rho"]) * g ** 2
            d = np.sqrt(ex + o["eps"]) / np.sqrt(v + o["eps"]) * g
            ex = o["rho"] * ex + (1 - o["rho"]) * d ** 2
            u = -lr * d
        else:                                                      # adam, adamw
            m = o["b1"] * m + (1 - o["b1"]) * g
            v = o["b2"] * v + (1 - o["b2"]) * g ** 2
            u = -lr * (m / (1 - o["b1"] ** t)) / (np.sqrt(v / (1 - o["b2"] ** t)) + o["eps"])
            if name == "adamw":
                u = u - lr * o["weight_decay"] * theta
        theta = theta + u
    return theta


@pytest.mark.parametrize("name,fields", [
    ("sgd", dict(momentum=0.0, nesterov=False)),
    ("sgd", dict(momentum=0.9, nesterov=False)),
    ("sgd", dict(momentum=0.9, nesterov=True)),
    ("sgd", dict(momentum=0.5, weight_decay=0.1)),
    ("rmsprop", dict(rho=0.9, momentum=0.0)),
    ("rmsprop", dict(rho=0.8, momentum=0.7, eps=1e-3)),
    ("adadelta", dict(rho=0.95, eps=1e-6)),
    ("adam", dict(b1=0.8, b2=0.95)),
    ("adamw", dict(b1=0.9, b2=0.99, weight_decay=0.3)),
])
def test_every_optimizer_follows_its_update_rule(name, fields):
    """Four steps on Σθ² against the NumPy update rules: a momentum, Nesterov, decay rate or
    weight decay that is dropped or wired to the wrong argument changes the trajectory."""
    o = base_config("adding").optimizer
    o.name, o.learning_rate, o.clip_norm = name, 0.05, 0.0
    for k, v in fields.items():
        o[k] = v
    tx, _ = make_optimizer(o, 100)
    theta0 = np.array([3.0, -2.0, 0.5], np.float32)
    params, state = {"w": theta0}, None
    state = tx.init(params)
    for _ in range(4):
        updates, state = tx.update({"w": 2 * params["w"]}, state, params)
        params = optax.apply_updates(params, updates)
    want = _numpy_optimizer(name, 0.05, o.to_dict(), theta0, 4)
    np.testing.assert_allclose(params["w"], want, rtol=2e-5, atol=1e-6)


def test_parameter_average_follows_its_recursion_and_leaves_training_alone():
    """``optimizer.ema_decay``: the chain's updates are those of the chain without it, and the
    average follows ``e ← d_t·e + (1 − d_t)·θ_{t+1}``, ``d_t = min(decay, (1+t)/(10+t))``,
    in NumPy from the initial parameters."""
    from grux.train.optim import evaluation_params
    o = base_config("adding").optimizer
    o.name, o.learning_rate, o.clip_norm = "adam", 0.1, 0.0
    plain, _ = make_optimizer(o, 100)
    o.ema_decay = 0.6
    tx, _ = make_optimizer(o, 100)
    theta0 = np.array([3.0, -2.0, 0.5], np.float32)
    p, q = {"w": theta0}, {"w": theta0}
    s, s_plain = tx.init(p), plain.init(q)
    assert evaluation_params({"params": p, "opt_state": s_plain}) is p  # no average kept
    e = theta0.astype(np.float64)
    for t in range(30):
        u, s = tx.update({"w": 2 * p["w"]}, s, p)
        v, s_plain = plain.update({"w": 2 * q["w"]}, s_plain, q)
        np.testing.assert_array_equal(u["w"], v["w"])
        p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
        d = min(0.6, (1 + t) / (10 + t))
        e = d * e + (1 - d) * np.asarray(p["w"], np.float64)
    got = evaluation_params({"params": p, "opt_state": s})["w"]
    np.testing.assert_allclose(got, e, rtol=1e-5)
    assert not np.allclose(got, p["w"], atol=1e-3)  # the average lags the iterate


def test_schedules_warmup_peak_and_end():
    o = base_config("adding").optimizer
    o.learning_rate, o.warmup_steps = 1.0, 10
    o.schedule, o.end_factor = "cosine", 0.1
    s = make_schedule(o, 110)
    assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0) and float(s(110)) == pytest.approx(0.1)
    o.schedule, o.warmup_steps, o.decay_every, o.decay_rate = "exponential", 0, 10, 0.5
    s = make_schedule(o, 100)
    assert [float(s(t)) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_clipping_bounds_the_update_norm():
    o = base_config("adding").optimizer
    o.name, o.learning_rate, o.clip_norm = "sgd", 1.0, 1.0
    tx, _ = make_optimizer(o, 10)
    params = {"w": np.zeros(4, np.float32)}
    updates, _ = tx.update({"w": np.full(4, 100.0, np.float32)}, tx.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(1.0, rel=1e-5)


def test_weight_noise_has_the_requested_std_and_keeps_gradients():
    import jax
    import jax.numpy as jnp

    from grux.train.optim import add_weight_noise
    params = {"a": jnp.zeros((300, 300)), "b": jnp.ones(5)}
    noisy = add_weight_noise(params, jax.random.PRNGKey(0), 0.075)
    assert float(jnp.std(noisy["a"])) == pytest.approx(0.075, rel=0.02)
    assert not np.allclose(noisy["a"][:5, 0], noisy["b"] - 1)  # independent per leaf
    g = jax.grad(lambda p: jnp.sum(add_weight_noise(p, jax.random.PRNGKey(1), 0.1)["b"] ** 2))(
        params)
    np.testing.assert_allclose(g["b"], 2 * add_weight_noise(params, jax.random.PRNGKey(1),
                                                            0.1)["b"], rtol=1e-6)


def test_importing_a_config_or_asking_for_help_stays_light():
    """Config files import no TensorFlow Datasets or SentencePiece (data is read on first
    use), and ``--help`` imports no JAX at all."""
    import subprocess
    import sys
    code = ("import importlib.util, sys\n"
            "for name in sys.argv[1:]:\n"
            "    s = importlib.util.spec_from_file_location('c', name)\n"
            "    m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.get_config()\n"
            "print(sorted(k for k in ('tensorflow_datasets', 'sentencepiece', 'sacrebleu',"
            " 'matplotlib') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *map(str, CONFIGS)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    code = ("import sys, runpy\nsys.argv = ['grux-train', '--help']\n"
            "try:\n    runpy.run_module('grux.train', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0\n"
            "print('jax' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stderr.strip() == "False", out.stderr[-2000:]
    assert "--config.FIELD=VALUE" in out.stdout
