"""Speech recognition tables (issue 13): isolated and connected spoken digits, GRU vs LSTM vs
tanh-RNN, speaker-dependent and speaker-independent, beside a frame-order-blind baseline.

    python experiments/speech.py                       # every table below
    python experiments/speech.py --quick               # smoke test: a few steps per run
    python experiments/speech.py --parts loso --cells gru

Parts (``--parts``):

- ``isolated``: ``configs/fsdd_digits.py`` on the official FSDD split, once per cell, beside
  the pooled log-mel softmax regression (``grux.tasks.speech.pooled_baseline``, its ``l2``
  chosen on the same validation set).
- ``loso``: leave-one-speaker-out, ``configs/fsdd_digits.py:<speaker>`` for all 6 speakers
  (GRU, or the first of ``--cells``), each beside the pooled baseline on the same split;
  the mean over the folds.
- ``connected``: ``configs/connected_digits.py`` (speaker-dependent), once per cell.
- ``connected_si``: ``configs/connected_digits.py:<speaker>`` for ``--si-speakers``
  (speaker-independent), first cell only.

Each run is an ordinary training run in its own workdir under ``--root``, so an interrupted
sweep resumes where it stopped and finished runs are reused. Numbers are the test metrics at
the best validation evaluation (accuracy; digit error rate for connected digits). Cells are
compared at equal budget: same width, depth, steps, batch and optimizer. Outputs in
``--out``: ``speech.md`` (tables) and ``speech.json``.
"""
from __future__ import annotations

import argparse
import os

import runs  # experiments/runs.py (this script's folder is on sys.path)

ROOT = runs.ROOT
CELLS = ("gru", "lstm", "tanh")
CELL_NAMES = {"gru": "GRU", "lstm": "LSTM", "tanh": "tanh-RNN"}
PARTS = ("isolated", "loso", "connected", "connected_si")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
ISOLATED = os.path.join(ROOT, "configs", "fsdd_digits.py")
CONNECTED = os.path.join(ROOT, "configs", "connected_digits.py")


def run(root: str, name: str, config: str, cell: str, quick: bool) -> dict:
    workdir = os.path.join(root, name)
    s = runs.train(config, workdir, [f"--config.model.cell={cell}"], quick)
    s["parameters"] = runs.parameter_count(workdir)
    best = s["best"]["results"]
    metric = ("accuracy" if "accuracy" in best["test"] else "token_error_rate")
    print(f"  {name}: test {metric} {100 * best['test'][metric]:.2f} % at step "
          f"{s['best']['step']} ({s['train_seconds'] / 60:.1f} min)", flush=True)
    return {"name": name, "cell": cell, "parameters": s["parameters"],
            "train_seconds": s["train_seconds"], "best_step": s["best"]["step"],
            "steps": s["step"], "validation": best["validation"], "test": best["test"]}


def baseline(speaker: str) -> dict:
    """The pooled log-mel softmax regression on the split ``configs/fsdd_digits.py:<speaker>``
    trains on (same recordings, same log-mel window/hop/bins)."""
    from grux.tasks.speech.acoustic import feature_spec
    from grux.tasks.speech.digits import RATE, fsdd_splits
    from grux.tasks.speech.pooled_baseline import pooled_baseline
    from grux.train.main import parse_command_line
    config, _, _ = parse_command_line([f"--config={ISOLATED}:{speaker}"])
    out = pooled_baseline(fsdd_splits(config), feature_spec(config.task, RATE))
    print(f"  pooled baseline {speaker or 'official'}: test {100 * out['test']:.2f} % "
          f"(l2 {out['l2']:g})", flush=True)
    return out


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def minutes(r: dict) -> str:
    return f"{r['train_seconds'] / 60:.1f} min"


def tables(results: dict) -> list[str]:
    lines: list[str] = []
    if "isolated" in results:
        lines += ["### Isolated digits, official split (test = recordings 0-4 of every "
                  "speaker, 300)", "",
                  "| model | parameters | train time | validation acc. | test acc. |",
                  "|---|---|---|---|---|"]
        b = results["isolated"]["baseline"]
        lines.append(f"| pooled log-mel softmax regression (l2 {b['l2']:g}) | "
                     f"{b['parameters']:,} | – | {pct(b['validation'])} | "
                     f"{pct(b['test'])} |")
        for r in results["isolated"]["runs"]:
            lines.append(f"| bi-{CELL_NAMES[r['cell']]} 2x128 | {r['parameters']:,} | {minutes(r)} |"
                         f" {pct(r['validation']['accuracy'])} | {pct(r['test']['accuracy'])} |")
        lines.append("")
    if "loso" in results:
        rs = results["loso"]["runs"]
        cell = CELL_NAMES[rs[0]["cell"]] if rs else "?"
        lines += ["### Isolated digits, leave one speaker out (test = all 500 recordings of "
                  "the speaker; validation = the next speaker's)", "",
                  f"| held-out speaker | pooled baseline | bi-{cell} 2x128 | train time |",
                  "|---|---|---|---|"]
        for spk, r, b in zip(results["loso"]["speakers"], rs, results["loso"]["baselines"]):
            lines.append(f"| {spk} | {pct(b['test'])} | {pct(r['test']['accuracy'])} | "
                         f"{minutes(r)} |")
        if rs:
            mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
            lines.append(f"| **mean** | {pct(mean([b['test'] for b in results['loso']['baselines']]))}"
                         f" | {pct(mean([r['test']['accuracy'] for r in rs]))} | |")
        lines.append("")
    for part, title in (("connected", "Connected digits, speaker-dependent (1,000 test "
                                      "utterances of 1-7 digits from recordings 0-4)"),
                        ("connected_si", "Connected digits, speaker-independent (1,000 test "
                                         "utterances from one held-out speaker)")):
        if part not in results:
            continue
        lines += [f"### {title}", "",
                  "| model | test speaker | parameters | train time | validation DER | "
                  "test DER | test SER |", "|---|---|---|---|---|---|---|"]
        for r in results[part]["runs"]:
            lines.append(f"| bi-{CELL_NAMES[r['cell']]} 2x128, CTC | {r.get('speaker') or 'all six'}"
                         f" | {r['parameters']:,} | {minutes(r)} | "
                         f"{pct(r['validation']['token_error_rate'])} | "
                         f"{pct(r['test']['token_error_rate'])} | "
                         f"{pct(r['test']['sentence_error_rate'])} |")
        lines.append("")
    lines.append("DER: digit (token) error rate, edit distance over reference digits; SER: "
                 "string (sentence) error rate. Greedy CTC decoding (beam 1).")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--si-speakers", default="george",
                   help="held-out speakers for the connected speaker-independent runs")
    runs.add_sweep_arguments(p, "speech", jobs=None)
    a = p.parse_args(argv)
    parts = runs.choices(p, a.parts, PARTS, "part", "--parts")
    cells = runs.choices(p, a.cells, CELLS, "cell", "--cells")
    si = runs.choices(p, a.si_speakers, SPEAKERS, "speaker", "--si-speakers")
    os.makedirs(a.out, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    json_path = os.path.join(a.out, f"speech{suffix}.json")
    results: dict = {}   # the parts this invocation reruns, each replacing the file's

    def save() -> str:
        # the other parts are read at each save, under the results folder's lock: another
        # invocation into the same file may have saved parts since this one started
        return runs.merge_results(results, json_path, tables, a.quick)[1]

    print(f"speech tables: parts {parts}, cells {cells} → {a.root}", flush=True)
    if "isolated" in parts:
        results["isolated"] = {"baseline": baseline(""), "runs": [
            run(a.root, f"isolated-{c}", ISOLATED, c, a.quick) for c in cells]}
        save()
    if "loso" in parts:
        results["loso"] = {"speakers": list(SPEAKERS), "baselines": [], "runs": []}
        for spk in SPEAKERS:
            results["loso"]["baselines"].append(baseline(spk))
            results["loso"]["runs"].append(
                run(a.root, f"loso-{spk}-{cells[0]}", f"{ISOLATED}:{spk}", cells[0], a.quick))
            save()
    if "connected" in parts:
        results["connected"] = {"runs": [
            run(a.root, f"connected-{c}", CONNECTED, c, a.quick) for c in cells]}
        save()
    if "connected_si" in parts:
        results["connected_si"] = {"runs": []}
        for spk in si:
            r = run(a.root, f"connected-{spk}-{cells[0]}", f"{CONNECTED}:{spk}", cells[0],
                    a.quick)
            results["connected_si"]["runs"].append({**r, "speaker": spk})
            save()
    print(save())


if __name__ == "__main__":
    main()
