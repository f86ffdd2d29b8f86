"""Transcribe recordings with a trained speech run:
``grux-transcribe --workdir runs/digits-sd one.wav two.wav`` (``-``: read the paths from
stdin, one per line).

Prints ``path<TAB>transcript`` per file, in the order given: the digit word of an isolated
digit model (``spoken_digits``), the digit string (``3 1 4``) or the text of a CTC model.
Input: mono WAV (any PCM or float sample format soundfile reads). A recording at another
sample rate than the model's is resampled (polyphase, ``scipy.signal.resample_poly``) and a
note says so on stderr; a missing, empty, multi-channel or non-WAV file is a one-line error
naming it (exit 1) before anything is transcribed. The workdir is not changed.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from grux.infer.loader import add_workdir_flags, fail, load_or_exit

PROG = "grux-transcribe"
SPEECH_TASKS = ("spoken_digits", "connected_digits", "librispeech")


class AudioInputError(ValueError):
    """A file grux-transcribe cannot use; the message names it."""


def check_wav(path: str) -> None:
    """Raise :class:`AudioInputError` naming ``path`` unless it is a non-empty mono WAV."""
    import os

    import soundfile as sf
    if not os.path.isfile(path):
        raise AudioInputError(f"{path}: no such file")
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise AudioInputError(f"{path}: not a readable WAV file ({e})") from None
    if info.format not in ("WAV", "WAVEX"):
        raise AudioInputError(f"{path}: not a WAV file (format {info.format})")
    if info.channels != 1:
        raise AudioInputError(f"{path}: {info.channels} channels; the model needs mono "
                              f"(e.g. sox {path} -c 1 mono.wav)")
    if info.frames == 0:
        raise AudioInputError(f"{path}: empty recording (0 samples)")


def read_wav(path: str, rate: int) -> tuple[np.ndarray, str]:
    """``(int16 samples at rate, note)`` of a checked WAV (:func:`check_wav`); the note is
    empty or says what was resampled."""
    import soundfile as sf
    check_wav(path)
    x, file_rate = sf.read(path, dtype="float64")
    note = ""
    if file_rate != rate:
        from scipy.signal import resample_poly
        g = math.gcd(int(file_rate), rate)
        x = resample_poly(x, rate // g, int(file_rate) // g)
        note = f"{path}: resampled from {file_rate} Hz to the model's {rate} Hz"
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16), note


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_workdir_flags(p, "|".join(SPEECH_TASKS))
    p.add_argument("files", nargs="+", help="WAV files; '-' reads paths from stdin")
    p.add_argument("--beam", type=int, default=0,
                   help="CTC prefix beam size (0: config.task.beam_size; 1: greedy)")
    p.add_argument("--batch_size", type=int, default=32)
    a = p.parse_args(argv)
    if a.beam < 0 or a.batch_size < 1:
        p.error("--beam must be >= 0 and --batch_size >= 1")
    paths = []
    for f in a.files:
        paths += [line.strip() for line in sys.stdin if line.strip()] if f == "-" else [f]
    if not paths:
        fail(PROG, "no input files")

    for path in paths:                     # bad input fails before the model is loaded
        try:
            check_wav(path)
        except AudioInputError as e:
            fail(PROG, str(e))
    task, model, _ = load_or_exit(PROG, a, None)
    if task.name not in SPEECH_TASKS:
        fail(PROG, f"{a.workdir} trained task {task.name!r}, not a speech task "
                   f"({', '.join(SPEECH_TASKS)})")
    audio = []
    for path in paths:
        try:
            x, note = read_wav(path, task.rate)
        except AudioInputError as e:
            fail(PROG, str(e))
        if note:
            print(f"{PROG}: {note}", file=sys.stderr)
        audio.append(x)
    if a.beam and "beam_size" in task.config.task:
        task.config.task.beam_size = a.beam

    from grux.tasks.speech.recognizer import Recognizer
    recognizer = Recognizer(model, batch_size=a.batch_size,
                            bucket=task.config.task.bucket_samples)
    for path, text in zip(paths, task.transcribe(recognizer, audio)):
        print(f"{path}\t{text}", flush=True)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
