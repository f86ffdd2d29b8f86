"""Short training runs on the real datasets (../shared/data): the LM and music losses go
down, and grux-sample turns the trained LM's checkpoint into valid text."""
import numpy as np
import pytest

from grux.train import base_config, train_and_evaluate
from grux.train.writers import read_metrics


@pytest.fixture(scope="module")
def dirs(data_dir, tmp_path_factory):
    return str(data_dir), str(tmp_path_factory.mktemp("tfds"))


def _train_curve(workdir):
    return [r["loss"] for r in read_metrics(workdir) if r.get("split") == "train"]


def _quiet(c, steps, every):
    c.num_train_steps = steps
    c.eval.every_steps = c.checkpoint.every_steps = steps
    c.log.every_steps, c.log.tensorboard, c.log.progress = every, False, False
    return c


def test_music_nll_decreases_on_jsb_chorales(dirs, tmp_path):
    c = _quiet(base_config("music"), 60, 10)
    c.data_dir, c.tfds_dir = dirs
    c.batch_size, c.eval.batch_size = 8, 32
    c.optimizer.name, c.optimizer.learning_rate = "rmsprop", 1e-2
    c.weight_noise = 0.075
    summary = train_and_evaluate(c, str(tmp_path))
    curve = _train_curve(tmp_path)
    assert curve[-1] < curve[0] - 10, curve                      # from ~61 nats (88·ln 2)
    assert summary["final"]["test"]["loss"] < 20.0


def test_char_lm_bpc_decreases_on_tiny_shakespeare_and_samples(dirs, tmp_path, capsys):
    c = _quiet(base_config("lm"), 80, 10)
    c.data_dir, c.tfds_dir = dirs
    c.task.dataset, c.task.bptt = "tiny_shakespeare", 50
    c.model.hidden, c.model.num_layers, c.model.init_scale = 64, 1, 0.0
    c.batch_size, c.eval.batch_size = 16, 64
    c.optimizer.learning_rate = 1e-2
    c.eval.metric = "validation/bpc"
    summary = train_and_evaluate(c, str(tmp_path))
    curve = _train_curve(tmp_path)
    assert curve[-1] < 0.8 * curve[0], curve                    # from ln 65 ≈ 4.17 nats
    assert summary["final"]["test"]["bpc"] < 4.0

    from grux.infer.sample import main
    capsys.readouterr()
    assert main(["--workdir", str(tmp_path), "--prompt", "ROMEO:", "--length", "60",
                 "--temperature", "0.8", "--top_k", "5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= 60
    vocab = set(open(f"{dirs[0]}/tinyshakespeare/input.txt").read())
    assert set(text.rstrip("\n")) <= vocab


def test_word_lm_perplexity_decreases_on_ptb(dirs, tmp_path):
    c = _quiet(base_config("lm"), 40, 10)
    c.data_dir, c.tfds_dir = dirs
    c.task.bptt = 20
    c.model.hidden, c.model.num_layers = 32, 1
    c.batch_size, c.eval.batch_size = 20, 200
    c.optimizer.name, c.optimizer.learning_rate, c.optimizer.clip_norm = "sgd", 1.0, 5.0
    c.eval.metric = "validation/perplexity"
    summary = train_and_evaluate(c, str(tmp_path))
    curve = _train_curve(tmp_path)
    assert curve[-1] < curve[0] - 1.0, curve                    # from ln 10000 ≈ 9.2 nats
    assert summary["final"]["validation"]["perplexity"] < 2000
    assert np.isclose(summary["final"]["validation"]["perplexity"],
                      np.exp(summary["final"]["validation"]["loss"]))


def test_sample_cli_errors_are_clear(tmp_path, capsys):
    from grux.infer.sample import main
    with pytest.raises(SystemExit, match="1"):
        main(["--workdir", str(tmp_path)])
    assert "config.json not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--workdir", str(tmp_path), "--temperature", "-1"])
    with pytest.raises(SystemExit, match="2"):
        main(["--workdir", str(tmp_path), "--checkpoint", "newest"])
    # a workdir of another task: named, before any model is built
    (tmp_path / "config.json").write_text(base_config("adding").to_json_best_effort())
    with pytest.raises(SystemExit, match="1"):
        main(["--workdir", str(tmp_path)])
    assert "trained task 'adding', not 'lm'" in capsys.readouterr().err


def test_music_and_lm_streams_are_deterministic_and_resume(dirs):
    from grux.tasks.lm import LanguageModelTask
    from grux.tasks.music import MusicTask
    for name, task_cls in (("music", MusicTask), ("lm", LanguageModelTask)):
        c = base_config(name)
        c.data_dir, c.tfds_dir = dirs
        if name == "lm":
            c.task.dataset = "tiny_shakespeare"
        a = task_cls(c).train_stream(8, 0, 1)
        want = [next(a) for _ in range(40)]             # crosses an epoch boundary for music
        b = task_cls(c).train_stream(8, 0, 1)
        b.set_state({"position": 25})
        for got, ref in zip(b, want[25:]):
            for k in ref:
                np.testing.assert_array_equal(got[k], ref[k])
        half = task_cls(c).train_stream(8, 1, 2)       # process 1 of 2: rows 4..7
        half.set_state({"position": 3})
        np.testing.assert_array_equal(next(half)["targets"], want[3]["targets"][4:])


def test_chung2014_experiment_quick_mode_writes_table_and_plot(data_dir, tmp_path):
    import os
    import subprocess
    import sys

    from cli_runs import ROOT
    env = dict(os.environ, GRUX_DATA_DIR=str(data_dir), GRUX_TFDS_DIR=str(tmp_path / "tfds"),
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "experiments/chung2014_music.py", "--quick",
                          "--datasets", "jsb_chorales", "--cells", "gru", "--jobs", "1",
                          "--root", str(tmp_path / "runs"), "--out", str(tmp_path / "out")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    table = (tmp_path / "out" / "chung2014_music_quick.md").read_text()
    assert "QUICK MODE" in table and "| JSB Chorales | – | 9.10 |" in table
    assert (tmp_path / "out" / "chung2014_music_valid_quick.png").stat().st_size > 1000


def run_experiment(script, args, data_dir, tmp_path):
    """``python experiments/<script> <args>`` on the shared data, TFDS cache in ``tmp_path``."""
    import os
    import subprocess
    import sys

    from cli_runs import ROOT
    env = dict(os.environ, GRUX_DATA_DIR=str(data_dir), GRUX_TFDS_DIR=str(tmp_path / "tfds"),
               JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, f"experiments/{script}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_ltsf_experiment_quick_mode_writes_table_json_and_plot(data_dir, tmp_path):
    import json

    out = run_experiment("ltsf.py", ["--quick", "--datasets", "etth1", "--horizons", "96",
                                     "--root", str(tmp_path / "runs"), "--out",
                                     str(tmp_path / "out"), "--patience", "2",
                                     "--init", "torch"],
                         data_dir, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    table = (tmp_path / "out" / "ltsf_quick.md").read_text()
    assert "QUICK MODE" in table
    row = next(line for line in table.splitlines() if line.startswith("| ETTh1 | 96 |"))
    assert "| 0.368 (0.395) | 0.386 | 0.414 | 0.386 |" in row     # SegRNN README, L = 96
    run = json.loads((tmp_path / "out" / "ltsf_quick.json").read_text())["etth1,96,gru,0,torch"]
    assert {"mse", "mae", "naive_mse", "snaive_mse", "linear_mse"} <= set(run["test"])
    assert f"| {run['test']['linear_mse']:.3f} |" in row
    assert run["patience"] == 2                    # --patience reaches the run's config
    workdir = tmp_path / "runs" / "etth1-96-gru-s0-torch"      # --init reaches the config
    assert (workdir / "summary.json").is_file()
    assert json.loads((workdir / "config.json").read_text())["model"]["init"] == "torch"
    assert "| ETTh1 H=96 gru (torch init) seed 0 |" in table
    assert (tmp_path / "out" / "ltsf_quick.png").stat().st_size > 1000


def ltsf_record(dataset, horizon, cell, seed, mse=0.5):
    """A run's entry in ``ltsf.json`` as ``experiments/ltsf.py`` writes it (every metric
    ``mse``)."""
    metrics = {k: mse for k in ("mse", "mae", "naive_mse", "naive_mae", "snaive_mse",
                                 "snaive_mae", "linear_mse", "linear_mae")}
    return {"dataset": dataset, "horizon": horizon, "cell": cell, "seed": seed,
            "test": metrics, "validation": metrics, "best_step": 10, "step": 40,
            "status": "early_stopped", "steps_per_epoch": 10, "patience": 3,
            "train_seconds": 60.0}


def test_ltsf_table_compares_the_cells_where_every_cell_ran():
    ltsf = experiment_module("ltsf")
    results = {"a": ltsf_record("etth1", 96, "gru", 0, 0.4),
               "b": ltsf_record("etth1", 192, "gru", 0, 0.6),
               "c": ltsf_record("etth1", 96, "lstm", 0, 0.3),
               "d": ltsf_record("etth1", 96, "lstm", 1, 0.5)}     # lstm seeds: mean 0.4
    lines = ltsf.table(results)
    every = next(line for line in lines if line.startswith("| **average** |")).split(" | ")
    assert every[1:4] == ["2 cells", "0.500", "0.500"] and every[4] == "–"   # lstm: one row
    shared = next(line for line in lines if line.startswith("| **average where every"))
    cols = shared.split(" | ")
    assert cols[1:6] == ["1 cell", "0.400", "0.400", "0.400", "0.400"]
    assert cols[6] == "0.368"                                 # SegRNN's README, ETTh1 H=96
    gru_only = {k: r for k, r in results.items() if r["cell"] == "gru"}
    assert not any(line.startswith("| **average where") for line in ltsf.table(gru_only))


def test_ltsf_table_keeps_initialisations_apart():
    """Runs with ``--init torch`` get their own column; they are not averaged as seeds."""
    ltsf = experiment_module("ltsf")
    results = {"a": ltsf_record("etth1", 96, "gru", 0, 0.4),
               "b": {**ltsf_record("etth1", 96, "gru", 0, 0.6), "init": "torch"}}
    lines = ltsf.table(results)
    assert "| gru MSE | gru MAE | gru (torch init) MSE |" in lines[2]
    row = next(line for line in lines if line.startswith("| ETTh1 | 96 |")).split(" | ")
    assert row[2:4] == ["0.400", "0.400"] and row[4:6] == ["0.600", "0.600"]


def test_ltsf_run_table_names_the_accelerator_a_run_trained_on():
    """Training times from a GPU and from the 2-core CPU sit in one table: a run's row says
    which accelerator it used; CPU runs (and records older than the field) say nothing."""
    ltsf = experiment_module("ltsf")
    gpu = {**ltsf_record("weather", 336, "gru", 0), "device_kind": "NVIDIA H200"}
    results = {"a": ltsf_record("weather", 96, "gru", 0), "b": gpu,
               "c": {**ltsf_record("weather", 720, "gru", 0), "device_kind": "cpu"}}
    rows = {line.split(" | ")[0]: line for line in ltsf.table(results)
            if line.startswith("| Weather H=")}
    assert rows["| Weather H=336 gru seed 0"].endswith("| 1.0 min (on NVIDIA H200) |")
    assert rows["| Weather H=96 gru seed 0"].endswith("| 1.0 min |")
    assert rows["| Weather H=720 gru seed 0"].endswith("| 1.0 min |")


def test_ltsf_sweeps_at_once_into_one_results_file_keep_each_others_runs(tmp_path,
                                                                        monkeypatch):
    """Two invocations writing the same ``ltsf.json`` (say ETTh1 on one core, ETTh2 on the
    other): each write keeps the runs the other saved since this one started."""
    import json

    ltsf = experiment_module("ltsf")
    json_path = tmp_path / "out" / "ltsf.json"
    record = ltsf_record

    def train_while_another_sweep_saves(root, dataset, horizon, cell, seed, init, quick,
                                        patience):
        # Another invocation's save, as ltsf.main does it (the runs module is the one the
        # imported script uses). The pool runs this while the main thread saves the last run.
        ltsf.runs.merge_results({f"etth2,{horizon},gru,0": record("etth2", horizon, "gru", 0)},
                                str(json_path), ltsf.table, False)
        return record(dataset, horizon, cell, seed)

    monkeypatch.setattr(ltsf, "train", train_while_another_sweep_saves)
    ltsf.main(["--datasets", "etth1", "--horizons", "96,192", "--root", str(tmp_path / "runs"),
               "--out", str(tmp_path / "out")])
    saved = json.loads(json_path.read_text())
    assert set(saved) == {"etth1,96,gru,0", "etth1,192,gru,0", "etth2,96,gru,0",
                          "etth2,192,gru,0"}
    table = (tmp_path / "out" / "ltsf.md").read_text()
    assert sum(line.startswith(("| ETTh1 |", "| ETTh2 |")) for line in table.splitlines()) == 4
    assert not (tmp_path / "out" / "ltsf.json.part").exists()


def test_results_merged_by_threads_at_once_keep_every_run(tmp_path, monkeypatch):
    """Eight writers, each adding its runs one at a time to one results file, lose none:
    without the folder lock, a read slowed down here lets another writer's save land between
    this one's read and write, and one of the two runs is dropped."""
    import json
    import threading
    import time

    runs = experiment_module("runs")
    json_path = str(tmp_path / "results.json")
    load = runs.load_results

    def slow_load(path, empty):
        results = load(path, empty)
        time.sleep(0.002)
        return results

    monkeypatch.setattr(runs, "load_results", slow_load)

    def writer(w):
        for i in range(10):
            runs.merge_results({f"{w},{i}": i}, json_path, lambda r: [f"{len(r)} runs"], False)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(json_path) as f:
        assert len(json.load(f)) == 80
    assert (tmp_path / "results.md").read_text().strip() == "80 runs"


def test_ltsf_experiment_reports_a_failed_run_and_goes_on(data_dir, tmp_path):
    """A run that fails (here every run: patience -1 is refused by the config check) is
    reported by its workdir; the sweep finishes the others and exits non-zero."""
    out = run_experiment("ltsf.py", ["--quick", "--datasets", "etth1", "--horizons", "96,192",
                                     "--root", str(tmp_path / "runs"), "--out",
                                     str(tmp_path / "out"), "--patience", "-1"],
                         data_dir, tmp_path)
    assert out.returncode != 0
    assert out.stdout.count("FAILED") == 2 and "eval.patience" in out.stdout
    assert "2 run(s) failed" in out.stderr and "etth1-192-gru-s0" in out.stderr


def test_copy_task_and_synthetic_lm_train_without_files(tmp_path):
    c = _quiet(base_config("copy"), 800, 100)
    c.task.delay, c.task.length, c.task.eval_examples = 5, 4, 256
    c.model.hidden, c.optimizer.learning_rate = 32, 1e-2
    c.eval.metric, c.eval.mode = "validation/copy_accuracy", "max"
    s = train_and_evaluate(c, str(tmp_path / "copy"))
    assert s["final"]["test"]["copy_accuracy"] > 0.5                  # chance: 1/8
    c = _quiet(base_config("lm"), 60, 20)
    c.task.dataset, c.task.bptt = "synthetic", 10
    c.model.hidden, c.model.num_layers, c.batch_size = 32, 1, 16
    c.optimizer.learning_rate = 1e-2
    c.eval.metric = "validation/perplexity"
    s = train_and_evaluate(c, str(tmp_path / "lm"))
    assert s["final"]["test"]["perplexity"] < 15                      # uniform: 31 words


def test_speech_experiment_quick_mode_writes_tables_and_keeps_other_parts(data_dir,
                                                                          tmp_path):
    import json
    import os
    import subprocess
    import sys

    from cli_runs import ROOT
    env = dict(os.environ, GRUX_DATA_DIR=str(data_dir), GRUX_TFDS_DIR=str(tmp_path / "tfds"),
               JAX_PLATFORMS="cpu")

    def speech(*args):
        return subprocess.run([sys.executable, "experiments/speech.py", "--quick",
                               "--root", str(tmp_path / "runs"), "--out",
                               str(tmp_path / "out"), *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    out = speech("--parts", "isolated,connected_si", "--cells", "tanh",
                 "--si-speakers", "theo")
    assert out.returncode == 0, out.stderr[-3000:]
    out = speech("--parts", "isolated", "--cells", "tanh")   # reuses the finished run
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "speech_quick.json").read_text())
    assert set(results) == {"isolated", "connected_si"}
    assert results["connected_si"]["runs"][0]["speaker"] == "theo"
    table = (tmp_path / "out" / "speech_quick.md").read_text()
    assert "QUICK MODE" in table and "| pooled log-mel softmax regression" in table
    assert "| bi-tanh-RNN 2x128 |" in table and "| theo |" in table
    bad = speech("--cells", "gru,rnn")
    assert bad.returncode == 2 and "unknown cell 'rnn' in --cells" in bad.stderr


def test_music_beyond_quick_mode_writes_table_and_json(data_dir, tmp_path):
    import json

    out = run_experiment("music_beyond.py", ["--quick", "--datasets", "jsb_chorales",
                                             "--sizes", "32x2", "--weight_dropouts", "0.5",
                                             "--ema_decays", "0.9", "--decay_starts", "3",
                                             "--learning_rates", "0.002", "--epochs", "7",
                                             "--seeds", "3", "--context_frames", "2",
                                             "--deep_outputs", "8relu",
                                             "--root", str(tmp_path / "runs"),
                                             "--out", str(tmp_path / "out")],
                         data_dir, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    table = (tmp_path / "out" / "music_beyond_quick.md").read_text()
    assert "QUICK MODE" in table
    row = next(line for line in table.splitlines() if line.startswith("| JSB Chorales | gru |"))
    assert "| 8.10 | 8.43 | 8.45 |" in row                      # Bai et al. 2018, issue 16
    assert "weight dropout 0.5" in row and "parameter average (decay 0.9)" in row
    assert "adamw 0.002," in row                                # --learning_rates
    assert "| 3 |" in row and "seed" not in row.split("|")[3]  # the seeds column, not settings
    assert "32x2, the last 2 frames as input, a deep output of 8 relu units," in row
    (rec,) = json.loads((tmp_path / "out" / "music_beyond_quick.json").read_text())
    assert rec["size"] == "32x2" and rec["parameters"] > 0 and rec["weight_dropout"] == 0.5
    assert rec["ema_decay"] == 0.9
    assert f"{rec['parameters']:,}" in row
    assert rec["test_after_first_frame"] != rec["test"]          # the two protocols
    assert rec["seed"] == 3 and rec["context_frames"] == 2
    assert rec["output_hidden"] == 8 and rec["output_activation"] == "relu"
    workdir = (tmp_path / "runs" / "jsb_chorales-gru-32x2-i0-d0.3-wd0-b1-wdr0.5-ema0.9-decay3"
                                   "-lr0.002-ctx2-out8relu-seed3")
    cfg = json.loads((workdir / "config.json").read_text())
    assert cfg["model"]["num_layers"] == 2 and cfg["model"]["output_dropout"] == 0.3
    assert cfg["model"]["weight_dropout"] == 0.5 and cfg["optimizer"]["ema_decay"] == 0.9
    assert cfg["model"]["input_dropout"] == 0.0 and cfg["optimizer"]["weight_decay"] == 0.0
    assert cfg["batch_size"] == 1                                  # one piece per update
    assert cfg["optimizer"]["decay_start"] == 3 * 229               # --decay_starts, in epochs
    assert cfg["optimizer"]["learning_rate"] == 0.002
    assert cfg["seed"] == 3                                        # --seeds
    assert cfg["model"]["context_frames"] == 2
    assert cfg["model"]["output_hidden"] == 8 and cfg["model"]["output_activation"] == "relu"
    assert rec["forked_from"] is None

    # --fork: a later decay start continues the run above from its checkpoint (the quick
    # runs are 4 steps, so the fork is at step 4, before either decay)
    out = run_experiment("music_beyond.py", ["--quick", "--datasets", "jsb_chorales",
                                             "--sizes", "32x2", "--weight_dropouts", "0.5",
                                             "--ema_decays", "0.9", "--decay_starts", "5",
                                             "--learning_rates", "0.002", "--seeds", "3",
                                             "--context_frames", "2", "--deep_outputs", "8relu",
                                             "--fork", "--root", str(tmp_path / "runs"),
                                             "--out", str(tmp_path / "out")],
                         data_dir, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"forked from {workdir.name} at step 4" in out.stdout
    forked = next(r for r in json.loads((tmp_path / "out" / "music_beyond_quick.json")
                                        .read_text()) if "from epoch 5" in r["schedule"])
    assert forked["forked_from"] == {"source": workdir.name, "step": 4}
    epoch = 4 / forked["steps_per_epoch"]
    assert f"(forked from {workdir.name} at epoch {epoch:g})" in (
        tmp_path / "out" / "music_beyond_quick.md").read_text()
    bad = run_experiment("music_beyond.py", ["--quick", "--learning_rates", "0.01,0"],
                         data_dir, tmp_path)
    assert bad.returncode == 2 and "--learning_rates must be positive" in bad.stderr
    bad = run_experiment("music_beyond.py", ["--quick", "--seeds", "0,-1"], data_dir, tmp_path)
    assert bad.returncode == 2 and "--seeds must be whole numbers >= 0" in bad.stderr
    bad = run_experiment("music_beyond.py", ["--quick", "--context_frames", "0"], data_dir,
                         tmp_path)
    assert bad.returncode == 2 and "--context_frames must be whole numbers >= 1" in bad.stderr
    for item in ("512", "relu", "0relu", "512sigmoid"):
        bad = run_experiment("music_beyond.py", ["--quick", "--deep_outputs", f"0,{item}"],
                             data_dir, tmp_path)
        assert bad.returncode == 2 and ("--deep_outputs is a comma-separated list of 0 (none) "
                                        "or <units><activation>") in bad.stderr, item


def test_music_beyond_chooses_a_point_on_the_mean_over_its_seeds():
    """A point with several seeds is chosen on, and reported as, their mean: here its seed 0
    has the lowest validation NLL of all runs, but its mean is above the other point's."""
    music_beyond = experiment_module("music_beyond")

    def record(dropout, seed, validation, test):
        return {"dataset": "jsb_chorales", "cell": "gru", "size": "8x1", "input_dropout": 0.0,
                "dropout": dropout, "weight_dropout": 0.0, "weight_decay": 0.0,
                "ema_decay": 0.0, "batch": 1, "seed": seed, "context_frames": 1,
                "output_hidden": 0, "output_activation": None,
                "schedule": "adamw 0.001",
                "parameters": 10, "best_step": 2, "step": 4, "steps_per_epoch": 2,
                "status": "completed", "validation": validation, "test": test,
                "test_after_first_frame": test + 0.02, "train_seconds": 60.0,
                "forked_from": None}

    runs = [record(0.3, 0, 8.10, 8.20), record(0.3, 1, 8.20, 8.10), record(0.5, 0, 8.14, 8.30)]
    lines = music_beyond.table(runs)
    (chosen,) = [line for line in lines if line.startswith("| JSB Chorales | gru |")]
    assert "dropout 0.5" in chosen and "| 0 |" in chosen and "| 8.140 | 8.300 | 8.320 |" in chosen
    runs.append(record(0.5, 1, 8.18, 8.00))      # a second seed: its mean is now 8.160
    (chosen,) = [line for line in music_beyond.table(runs)
                 if line.startswith("| JSB Chorales | gru |")]
    assert "dropout 0.3" in chosen and "| 0, 1 |" in chosen
    assert "| 8.150 (8.100-8.200) | 8.150 (8.100-8.200) | 8.170 (8.120-8.220) |" in chosen
    assert len({music_beyond.record_key(r) for r in runs}) == 4   # seeds kept apart
    every_run = [line for line in music_beyond.table(runs) if ", seed 1" in line]
    assert len(every_run) == 2                   # the runs' table names seeds other than 0


def test_chung2014_knobs_changes_one_setting_per_run(data_dir, tmp_path):
    import json

    variants = "base,momentum=0.9-lr-tenth,noise=0,decay"   # the order of the table
    args = ["--quick", "--datasets", "jsb_chorales", "--variants", variants, "--jobs", "1",
            "--root", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    out = run_experiment("chung2014_knobs.py", args, data_dir, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    configs = {v: json.loads((tmp_path / "runs" / f"jsb_chorales-gru-{v}" /
                              "config.json").read_text()) for v in variants.split(",")}
    base = configs["base"]
    assert base["optimizer"]["schedule"] == "constant" and base["weight_noise"] == 0.075
    decay = configs["decay"]["optimizer"]
    steps_per_epoch = -(-229 // base["batch_size"])               # 229 training chorales
    assert (decay["schedule"], decay["decay_rate"]) == ("exponential", 0.5)
    assert (decay["decay_every"], decay["decay_start"]) == (10 * steps_per_epoch,
                                                            20 * steps_per_epoch)
    tenth = configs["momentum=0.9-lr-tenth"]["optimizer"]
    assert tenth["momentum"] == 0.9
    assert tenth["learning_rate"] == pytest.approx(base["optimizer"]["learning_rate"] / 10)
    assert configs["noise=0"]["weight_noise"] == 0.0
    for v, c in configs.items():   # nothing else differs from base
        diff = {k for k in c if c[k] != base[k]} - {"optimizer", "weight_noise"}
        assert not diff, (v, diff)
    table = (tmp_path / "out" / "chung2014_knobs_quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| JSB Chorales | gru |")]
    assert [r.split(" | ")[2] for r in rows] == variants.split(",")
    assert rows[0].split(" | ")[8] == "–" and rows[1].split(" | ")[8].startswith(("+", "-"))
    bad = run_experiment("chung2014_knobs.py", ["--variants", "lr=1"], data_dir, tmp_path)
    assert bad.returncode == 2 and "unknown variant 'lr=1' in --variants" in bad.stderr


def experiment_module(name: str):
    """An ``experiments/`` script imported as a module (its folder on ``sys.path`` for the
    import only, as when the script runs)."""
    import importlib
    import sys

    from cli_runs import ROOT
    sys.path.insert(0, f"{ROOT}/experiments")
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(f"{ROOT}/experiments")


def test_chung2014_knobs_reports_a_diverged_run_by_its_last_good_evaluation(tmp_path):
    import json

    chung2014_knobs = experiment_module("chung2014_knobs")
    rows = [{"step": 10, "split": "train", "loss": 9.0},
            {"step": 10, "split": "validation", "loss": 4.0, "time": 1.0},
            {"step": 10, "split": "test", "loss": 4.1, "time": 1.0},
            {"step": 20, "split": "validation", "loss": 3.5, "time": 4.0},
            {"step": 20, "split": "test", "loss": 3.7, "time": 4.0},
            {"step": 30, "split": "validation", "loss": 3.6, "time": 7.0},
            {"step": 30, "split": "test", "loss": 3.4, "time": 7.0},
            {"step": 35, "split": "train", "loss": 5.0, "time": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = chung2014_knobs.diverged(str(tmp_path), spe=10)
    assert (got["validation"], got["test"]) == (3.5, 3.7)    # best validation, not best test
    assert (got["best_epoch"], got["epochs"]) == (2, 3)
    assert got["ended_by"] == "diverged (non-finite loss in epoch 4)"
    assert abs(got["train_minutes"] - 8.0 / 60) < 1e-9


def test_training_seconds_leaves_out_the_time_a_run_was_stopped(tmp_path):
    """The train-time column of the sweeps: the gaps between timed records, summed over every
    invocation, not across a ``resume`` (the hours a run spent killed between sessions)."""
    import json

    runs = experiment_module("runs")
    rows = [{"step": 5, "split": "train", "time": 100.0},
            {"step": 10, "split": "validation", "time": 110.0},
            {"step": 10, "event": "checkpoint"},
            {"step": 10, "event": "resume"},
            {"step": 15, "split": "train", "time": 5000.0},
            {"step": 20, "split": "train", "time": 5004.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert runs.training_seconds(str(tmp_path)) == 14.5
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [5, 10, 10, 10, 15, 20]


def test_music_beyond_keeps_the_runs_another_sweep_saved_meanwhile(tmp_path, monkeypatch):
    """Two sweeps into one results file: the runs the other one saved while this one trained
    stay in the file (they were lost when a sweep wrote back what it had read at its start)."""
    import json

    music_beyond = experiment_module("music_beyond")
    out = tmp_path / "out"
    out.mkdir()

    def record(dropout, validation):
        return {"dataset": "nottingham", "cell": "gru", "size": "8x1", "input_dropout": 0.0,
                "dropout": dropout, "weight_dropout": 0.0, "weight_decay": 0.0,
                "ema_decay": 0.0, "batch": 1, "seed": 0, "context_frames": 1,
                "output_hidden": 0, "output_activation": None,
                "schedule": "adamw 0.001",
                "parameters": 10,
                "best_step": 2, "step": 4, "steps_per_epoch": 2, "status": "completed",
                "validation": validation, "test": validation, "test_after_first_frame":
                validation, "train_seconds": 1.0, "forked_from": None}

    def train(root, dataset, cell, size, input_dropout, dropout, *rest, **kw):
        # meanwhile another sweep finishes a run and saves it
        (out / "music_beyond.json").write_text(json.dumps([record(0.5, 3.0)]))
        return record(dropout, 4.0)

    monkeypatch.setattr(music_beyond, "train", train)
    monkeypatch.setattr(music_beyond, "batch_for", lambda dataset, batch: 1)
    music_beyond.main(["--datasets", "nottingham", "--sizes", "8x1", "--dropouts", "0.3",
                       "--weight_decays", "0", "--weight_dropouts", "0", "--ema_decays", "0",
                       "--root", str(tmp_path / "runs"), "--out", str(out)])
    saved = json.loads((out / "music_beyond.json").read_text())
    assert sorted(r["dropout"] for r in saved) == [0.3, 0.5]
    chosen = next(line for line in (out / "music_beyond.md").read_text().splitlines()
                  if line.startswith("| Nottingham | gru |"))
    assert "dropout 0.5" in chosen            # the other sweep's run has the lower validation


def test_chung2014_knobs_keeps_the_runs_another_search_saved_meanwhile(tmp_path, monkeypatch):
    """As for music_beyond: the knob search read the results file when it started and wrote
    it back after every run, dropping the rows another search saved in between."""
    import json

    knobs = experiment_module("chung2014_knobs")
    out = tmp_path / "out"
    out.mkdir()

    def record(variant, validation):
        return {"dataset": "nottingham", "cell": "gru", "variant": variant,
                "change": knobs.VARIANTS[variant][0], "best_epoch": 1, "epochs": 2,
                "ended_by": "epoch cap", "validation": validation, "test": validation,
                "train_minutes": 0.1}

    def train(root, quick, dataset, cell, variant):
        # meanwhile another search finishes a run and saves it
        (out / "chung2014_knobs.json").write_text(json.dumps([record("lr=0.03", 3.0)]))
        return record(variant, 4.0)

    monkeypatch.setattr(knobs, "train", train)
    knobs.main(["--datasets", "nottingham", "--cells", "gru", "--variants", "base",
                "--root", str(tmp_path / "runs"), "--out", str(out), "--jobs", "1"])
    saved = json.loads((out / "chung2014_knobs.json").read_text())
    assert sorted(r["variant"] for r in saved) == ["base", "lr=0.03"]
    assert "| learning rate 0.03 |" in (out / "chung2014_knobs.md").read_text()


def test_speech_keeps_the_parts_another_invocation_saved_meanwhile(tmp_path, monkeypatch):
    """The speech tables: a part another invocation saves while this one trains stays in the
    file; the part this one reruns replaces the file's."""
    import json

    speech = experiment_module("speech")
    out = tmp_path / "out"
    out.mkdir()

    def result(name, error):
        return {"name": name, "cell": "gru", "parameters": 10, "train_seconds": 6.0,
                "best_step": 1, "steps": 2, "validation": {"token_error_rate": error},
                "test": {"token_error_rate": error, "sentence_error_rate": error}}

    (out / "speech.json").write_text(json.dumps(
        {"connected": {"runs": [result("old connected", 0.9)]}}))

    def run(root, name, config, cell, quick):
        # meanwhile another invocation saves the speaker-independent part
        (out / "speech.json").write_text(json.dumps(
            {"connected": {"runs": [result("old connected", 0.9)]},
             "connected_si": {"runs": [{**result("si", 0.2), "speaker": "george"}]}}))
        return result(name, 0.1)

    monkeypatch.setattr(speech, "run", run)
    speech.main(["--parts", "connected", "--cells", "gru", "--root", str(tmp_path / "runs"),
                 "--out", str(out)])
    saved = json.loads((out / "speech.json").read_text())
    assert sorted(saved) == ["connected", "connected_si"]
    assert [r["name"] for r in saved["connected"]["runs"]] == ["connected-gru"]
    assert saved["connected_si"]["runs"][0]["speaker"] == "george"


@pytest.mark.parametrize("script,argv,message", [
    ("ltsf", ["--horizons", "96,x"], "--horizons is a comma-separated list of whole numbers"),
    ("ltsf", ["--horizons", "96,0"], "--horizons must be whole numbers > 0, got '96,0'"),
    ("ltsf", ["--seeds", "0,-1"], "--seeds must be whole numbers >= 0, got '0,-1'"),
    ("ltsf", ["--seeds", ","], "--seeds is empty"),
    ("chung2014_music", ["--lrs", "0.01,-0.1"], "--lrs must be positive, got '0.01,-0.1'"),
    ("chung2014_music", ["--lrs", "fast"], "--lrs is a comma-separated list of numbers"),
    ("music_beyond", ["--dropouts", "0.3,-0.5"], "--dropouts must be >= 0, got '0.3,-0.5'"),
])
def test_sweep_list_flags_are_checked_before_any_run(script, argv, message, capsys):
    """The sweeps' comma-separated flags (``runs.values``): a bad item is a one-line usage
    error naming the flag (exit 2), raised before anything is trained."""
    module = experiment_module(script)
    with pytest.raises(SystemExit) as e:
        module.main(argv + ["--root", "/nonexistent/runs", "--out", "/nonexistent/out"])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
