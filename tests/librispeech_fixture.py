"""A tiny LibriSpeech corpus in the extracted folder layout (synthetic FLAC files written with
soundfile), for the builder's tests and for tests that run the librispeech task."""
import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf

from grux.data.builders import librispeech as ls

# subset folder -> {speaker: {chapter: utterances}}; speakers differ between subsets, as in
# the corpus. Chapter and utterance numbers are chosen so that numeric and string order
# differ (9 < 10, 0009 < 0010).
FIXTURE = {
    "train-clean-100": {19: {198: 3, 227: 2}, 103: {1240: 2}},
    "dev-clean": {84: {121123: 2}, 174: {50561: 1, 84280: 2}},
    "test-clean": {61: {70968: 2}, 121: {9: 1, 10: 2}},
}
WORDS = ["HE", "HOPED", "THERE", "WOULD", "BE", "STEW", "FOR", "DINNER", "IT'S", "A", "TURNIPS"]


def fixture_subsets(counts=None):
    by_folder = {s.folder: s for s in ls.SUBSETS}
    counts = counts or {f: sum(n for ch in spk.values() for n in ch.values())
                        for f, spk in FIXTURE.items()}
    return tuple(dataclasses.replace(by_folder[f], utterances=counts[f]) for f in FIXTURE)


def write_flac(path: Path, samples, rate=ls.SAMPLE_RATE, subtype="PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype, format="FLAC")


def write_corpus(root: Path, layout=None, seed=0) -> dict[str, dict]:
    """Writes ``root/LibriSpeech/<subset>/...``; returns ``{folder: {id: (samples, text)}}``."""
    rng = np.random.default_rng(seed)
    written = {}
    for folder, speakers in (layout or FIXTURE).items():
        written[folder] = {}
        for speaker, chapters in speakers.items():
            for chapter, n in chapters.items():
                cdir = root / ls.CORPUS_DIR / folder / str(speaker) / str(chapter)
                lines = []
                # Utterance numbers 0, 9, 10, ... (numeric order differs from string order
                # only when unpadded; the corpus pads to 4 digits).
                for utt in [0, 9, 10, 11][:n]:
                    key = f"{speaker}-{chapter}-{utt:04d}"
                    samples = rng.integers(-32768, 32768, size=int(rng.integers(160, 1600)),
                                           dtype=np.int16)
                    samples[:2] = (-32768, 32767)
                    text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 6))))
                    write_flac(cdir / f"{key}.flac", samples)
                    lines.append(f"{key} {text}")
                    written[folder][key] = (samples, text)
                (cdir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / ls.CORPUS_DIR / "SPEAKERS.TXT").write_text(";ID  |SEX| SUBSET | MINUTES | NAME\n")
    return written
