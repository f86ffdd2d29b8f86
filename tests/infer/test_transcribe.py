"""grux-transcribe end to end: a briefly trained spoken-digit run transcribes real
recordings (the same words the in-process recognizer gives), paths from stdin, resampling
with a note, and one-line errors naming the file for missing, non-WAV, stereo and empty
input."""
import os
import subprocess
import sys

import numpy as np
import pytest

RECORDINGS = ["3_theo_0.wav", "7_george_1.wav", "0_lucas_2.wav"]


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    from grux.train import base_config, train_and_evaluate
    c = base_config("spoken_digits")
    c.data_dir = str(data_dir)
    c.model.hidden, c.model.num_layers, c.model.dropout = 16, 1, 0.0
    c.batch_size, c.num_train_steps = 32, 30
    c.eval.every_steps = c.checkpoint.every_steps = 30
    c.log.tensorboard, c.log.progress = False, False
    workdir = tmp_path_factory.mktemp("digits")
    train_and_evaluate(c, str(workdir))
    return str(workdir)


def transcribe(workdir, *args, stdin=""):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "grux.infer.transcribe", "--workdir",
                           workdir, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300)


def test_transcribes_recordings_like_the_recognizer(trained, data_dir, tmp_path):
    import soundfile as sf
    from scipy.signal import resample_poly

    from grux.infer.loader import load_trained
    from grux.tasks.speech.recognizer import Recognizer
    paths = [str(data_dir / "fsdd" / "recordings" / f) for f in RECORDINGS]
    x, rate = sf.read(paths[0], dtype="int16")
    up = str(tmp_path / "up16k.wav")         # the first recording at 16 kHz
    sf.write(up, resample_poly(x.astype(np.float64), 2, 1) / 32768, 16000, subtype="PCM_16")
    r = transcribe(trained, paths[0], "-", up, stdin="\n".join(paths[1:]) + "\n")
    assert r.returncode == 0, r.stderr
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert [p for p, _ in lines] == [paths[0], *paths[1:], up]
    task, model, _ = load_trained(trained)
    want = task.transcribe(Recognizer(model), [sf.read(p, dtype="int16")[0] for p in paths])
    assert [t for _, t in lines[:3]] == want
    assert all(t in task.words for _, t in lines)
    assert f"{up}: resampled from 16000 Hz to the model's 8000 Hz" in r.stderr


@pytest.mark.parametrize("case", ["missing", "text", "stereo", "empty"])
def test_bad_input_is_one_line_naming_the_file(trained, tmp_path, case):
    import soundfile as sf
    path = str(tmp_path / f"{case}.wav")
    if case == "text":
        with open(path, "w") as f:
            f.write("not audio\n")
    elif case == "stereo":
        sf.write(path, np.zeros((800, 2)), 8000, subtype="PCM_16")
    elif case == "empty":
        sf.write(path, np.zeros(0), 8000, subtype="PCM_16")
    r = transcribe(trained, path)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"grux-transcribe: error: {path}: "), lines
    assert {"missing": "no such file", "text": "not a readable WAV", "stereo": "2 channels",
            "empty": "empty recording"}[case] in lines[0]


def test_a_run_of_another_task_is_refused(data_dir, tmp_path):
    from grux.train import base_config, train_and_evaluate
    c = base_config("adding")
    c.model.hidden, c.batch_size, c.num_train_steps = 8, 8, 2
    c.eval.every_steps = c.checkpoint.every_steps = 2
    c.log.tensorboard, c.log.progress = False, False
    train_and_evaluate(c, str(tmp_path / "adding"))
    wav = str(data_dir / "fsdd" / "recordings" / RECORDINGS[0])
    r = transcribe(str(tmp_path / "adding"), wav)
    assert r.returncode == 1
    assert "trained task 'adding', not a speech task" in r.stderr.strip().splitlines()[-1]
