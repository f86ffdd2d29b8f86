"""Public API over the grux TFDS builders: prepare a dataset once, read its splits as NumPy/str.

Names (see :func:`list_datasets`): ``ptb``, ``ptb_char``, ``tiny_shakespeare``,
``polyphonic_music/{jsb_chorales,nottingham,musedata,piano_midi}``,
``ett/{etth1,etth2,ettm1,ettm2}``, ``weather``, ``m4_hourly``, ``airline_passengers``,
``multi30k``, ``fsdd``, ``librispeech``. A config may also be given alone (``"jsb_chorales"``,
``"etth1"``) or through ``config=`` (``prepare("ett", config="etth1")``).

Directories:

* ``data_dir``: root of the raw files, laid out like ``shared/data`` (``<root>/ptb/...``,
  ``<root>/polyphonic_music/...``). Given, preparation reads only from there (no network;
  a missing or corrupt file is an error naming it and its expected sha256). ``None``:
  ``$GRUX_DATA_DIR`` if set, else ``<repo>/../shared/data`` if it exists, else the files
  are downloaded from their canonical URLs (pinned commits, sha256 checked).
* ``prepared_dir``: where TFDS writes the prepared ``array_record`` files
  (``<prepared_dir>/<builder>/[<config>/]1.0.0/``). ``None``: ``$GRUX_TFDS_DIR`` or
  ``~/.cache/grux/tfds``.

Every reader prepares the dataset first if needed (idempotent: a prepared dataset is reused)
and reads it with ``builder.as_data_source()`` (random access, no TensorFlow).

Integrity of prepared data
--------------------------
After a successful preparation, :data:`MANIFEST` (``grux_checksums.json``, beside TFDS's
``dataset_info.json``) records the size and sha256 of every file of the prepared dataset
directory. Every time a prepared dataset is opened (:func:`prepare`, hence every reader),
those files are checked against it (about 10 ms for the largest dataset, ptb_char, 11 MB,
with a warm page cache); a missing or changed file raises :class:`PreparedDataCorruptError`
naming the file and the command that repairs it (``grux-data prepare NAME``, which removes
the corrupt prepared copy, derived data only, and prepares it again; :func:`prepare` with
``repair=True``). :func:`prepared_state` / ``grux-data list`` report ``corrupt``.

A dataset prepared by an older grux (no manifest) is read back in full once, every record of
every split (array_record checks its own chunk hashes while reading); if that succeeds the
manifest is written then and the dataset is verified from then on, if not the error names
the split's files. ``grux-data list`` shows such a dataset as ``unverified`` (it only looks).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from grux.data.builders import BUILDERS, GruxBuilder
from grux.data.builders.common import SERIES_FULL_SPLIT, PreparedDataCorruptError, sha256_file
from grux.data.builders.librispeech import SPLIT_OF_FOLDER as LIBRISPEECH_SPLIT_OF_FOLDER
from grux.data.m4 import HOURLY_HORIZON as HORIZON
from grux.data.paths import resolve_data_dir, resolve_tfds_dir

DATA_DIR_ENV = "GRUX_DATA_DIR"
MANIFEST = "grux_checksums.json"
TEXT_BUILDERS = ("ptb", "ptb_char", "tiny_shakespeare")
SERIES_BUILDERS = ("ett", "weather", "airline_passengers")


class UnknownDatasetError(ValueError):
    """The dataset name (or config) is not one of :func:`list_datasets`."""


def default_prepared_dir() -> str:
    """``$GRUX_TFDS_DIR`` or ``~/.cache/grux/tfds`` (:func:`grux.data.paths.resolve_tfds_dir`)."""
    return resolve_tfds_dir()


def default_data_dir() -> str | None:
    """``$GRUX_DATA_DIR``, else ``<repo>/../shared/data`` if it exists
    (:func:`grux.data.paths.resolve_data_dir`), else ``None``: download the raw files."""
    path = resolve_data_dir()
    return path if os.environ.get(DATA_DIR_ENV) or Path(path).is_dir() else None


def list_datasets() -> list[str]:
    """All dataset names, ``builder`` or ``builder/config``, sorted."""
    return sorted(f"{n}/{c.name}" if c else n
                  for n, cls in BUILDERS.items() for c in (cls.BUILDER_CONFIGS or [None]))


def _config_owner() -> dict[str, str]:
    return {c.name: n for n, cls in BUILDERS.items() for c in (cls.BUILDER_CONFIGS or [])}


def resolve(name: str, config: str | None = None) -> tuple[str, str | None]:
    """``(builder name, config name or None)`` for a dataset name; see the module docstring.

    Raises:
      UnknownDatasetError: unknown name or config, or a config missing/superfluous.
    """
    if "/" in name:
        if config is not None:
            raise UnknownDatasetError(f"dataset {name!r} already names a config; "
                                      f"config={config!r} is not allowed with it")
        name, config = name.split("/", 1)
    if name not in BUILDERS and config is None and name in _config_owner():
        name, config = _config_owner()[name], name
    if name not in BUILDERS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known: "
                                  f"{', '.join(list_datasets())}")
    configs = [c.name for c in BUILDERS[name].BUILDER_CONFIGS or []]
    if configs and config not in configs:
        raise UnknownDatasetError(
            f"dataset {name!r} needs a config, one of {configs} (got {config!r})")
    if not configs and config is not None:
        raise UnknownDatasetError(f"dataset {name!r} has no configs (got config={config!r})")
    return name, config


def _dataset_name(builder_name: str, config: str | None) -> str:
    return f"{builder_name}/{config}" if config else builder_name


def _dataset_dir(builder_name: str, config: str | None, prepared_dir: str) -> Path:
    """``<prepared_dir>/<builder>/[<config>/]<version>``, the folder TFDS prepares into."""
    cls = BUILDERS[builder_name]
    return Path(prepared_dir, builder_name, *([config] if config else []), str(cls.VERSION))


def _corrupt(name: str, prepared_dir: str, detail: str, path) -> PreparedDataCorruptError:
    """The one-line error for a damaged prepared dataset, with the command that repairs it."""
    return PreparedDataCorruptError(
        f"prepared dataset {name}: {detail}; run `grux-data prepare {name} --prepared_dir "
        f"{prepared_dir}` to re-prepare it", path=path, detail=detail)


def get_builder(name: str, *, prepared_dir: str | None = None,
                config: str | None = None) -> GruxBuilder:
    """The (possibly unprepared) builder of a dataset writing under ``prepared_dir``.

    Raises:
      UnknownDatasetError: unknown name/config.
      PreparedDataCorruptError: the prepared dataset's metadata cannot be read and its files
        differ from the manifest (e.g. a damaged ``dataset_info.json``).
    """
    builder_name, config = resolve(name, config)
    prepared_dir = prepared_dir or default_prepared_dir()
    try:
        return BUILDERS[builder_name](data_dir=prepared_dir, config=config)
    except Exception as e:
        # TFDS reads dataset_info.json on construction: a damaged one fails here.
        folder = _dataset_dir(builder_name, config, prepared_dir)
        _check_manifest(folder, _dataset_name(builder_name, config), prepared_dir)
        info = folder / "dataset_info.json"
        if info.is_file():
            cause = (str(e).splitlines() or [""])[0][:200]
            raise _corrupt(_dataset_name(builder_name, config), prepared_dir,
                           f"cannot read {info} ({type(e).__name__}: {cause})", info) from e
        raise


def _builder_dataset_name(builder: GruxBuilder) -> str:
    return _dataset_name(builder.name,
                         builder.builder_config.name if builder.builder_config else None)


def _prepared(builder: GruxBuilder) -> bool:
    # TFDS's is_prepared() logs a warning for every missing version folder; look first.
    return (Path(builder.data_dir) / "dataset_info.json").is_file() and builder.is_prepared()


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)


def _write_manifest(folder: Path) -> None:
    """Records size and sha256 of every file in ``folder`` in ``folder/MANIFEST`` (atomic)."""
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
             for p in _data_files(folder)}
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"algorithm": "sha256", "files": files}, indent=1) + "\n")
    os.replace(tmp, folder / MANIFEST)


def _check_manifest(folder: Path, name: str, prepared_dir: str) -> bool:
    """Checks every file listed in ``folder/MANIFEST``; ``False`` when there is no manifest.

    Raises:
      PreparedDataCorruptError: a listed file is missing or differs (size or sha256), or the
        manifest itself is unreadable; the message names the file.
    """
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
        items = [(str(k), int(v["size"]), str(v["sha256"])) for k, v in files.items()]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise _corrupt(name, prepared_dir, f"unreadable checksum manifest {manifest} "
                       f"({type(e).__name__})", manifest) from e
    for fname, size, digest in items:
        path = folder / fname
        if not path.is_file():
            raise _corrupt(name, prepared_dir, f"file {path} is missing", path)
        actual_size = path.stat().st_size
        if actual_size != size:
            raise _corrupt(name, prepared_dir, f"file {path} has {actual_size} bytes, "
                           f"{size} recorded in {MANIFEST}", path)
        actual = sha256_file(path)
        if actual != digest:
            raise _corrupt(name, prepared_dir, f"file {path} is corrupt (sha256 {actual}, "
                           f"recorded {digest} in {MANIFEST})", path)
    return True


def _read_all(builder: GruxBuilder, name: str, prepared_dir: str) -> None:
    """Reads every record of every split; a read failure names the split's files."""
    for split, info in builder.info.splits.items():
        try:
            source = builder.as_data_source(split)
            for start in range(0, len(source), 4096):
                source.__getitems__(list(range(start, min(start + 4096, len(source)))))
        except Exception as e:  # array_record/Riegeli raise assorted errors on bad data
            files = [str(p) for p in info.filepaths]
            cause = (str(e).splitlines() or [""])[0][:200]
            raise _corrupt(name, prepared_dir, f"cannot read split {split!r} from "
                           f"{', '.join(files)} ({type(e).__name__}: {cause})",
                           files[0] if len(files) == 1 else None) from e


def verify_prepared(builder: GruxBuilder) -> bool:
    """Checks a prepared dataset against its manifest (see the module docstring).

    Returns ``True`` when checked against the manifest; for a dataset without one (prepared
    by an older grux) reads every record once and, if that succeeds, writes the manifest
    (``False`` if it cannot be written, e.g. a read-only prepared dir).

    Raises:
      PreparedDataCorruptError: a file is missing, changed or unreadable (named).
    """
    name, folder = _builder_dataset_name(builder), Path(builder.data_dir)
    prepared_dir = str(builder.data_dir_root)
    if _check_manifest(folder, name, prepared_dir):
        return True
    _read_all(builder, name, prepared_dir)
    try:
        _write_manifest(folder)
    except OSError:
        return False
    return True


def prepared_state(name: str, *, prepared_dir: str | None = None,
                   config: str | None = None) -> str:
    """``"no"`` (not prepared), ``"yes"`` (prepared, files match the manifest), ``"corrupt"``
    (a file is missing or differs) or ``"unverified"`` (prepared by an older grux, no manifest
    yet: the next read checks it in full and writes one). Writes nothing."""
    builder_name, config = resolve(name, config)
    prepared_dir = prepared_dir or default_prepared_dir()
    try:
        builder = get_builder(builder_name, prepared_dir=prepared_dir, config=config)
        if not _prepared(builder):
            return "no"
        verified = _check_manifest(Path(builder.data_dir), _dataset_name(builder_name, config),
                                   prepared_dir)
    except PreparedDataCorruptError:
        return "corrupt"
    return "yes" if verified else "unverified"


def is_prepared(name: str, *, prepared_dir: str | None = None, config: str | None = None) -> bool:
    """Whether the dataset is already prepared under ``prepared_dir`` (intact or not: see
    :func:`prepared_state`)."""
    return prepared_state(name, prepared_dir=prepared_dir, config=config) != "no"


class _DropTfdsInfo(logging.Filter):
    """Drops TFDS's INFO/DEBUG absl log records ("Generating dataset ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "tensorflow_datasets" not in record.pathname


@contextlib.contextmanager
def _quiet_tfds():
    """During a preparation: no TFDS progress bars (they leave ``\r``/``ESC[A`` debris in logs
    and redirected output) and no TFDS INFO logs; TFDS warnings still show. Restored after."""
    from tensorflow_datasets.core.utils import tqdm_utils
    was_active = getattr(tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    absl_logger, drop = logging.getLogger("absl"), _DropTfdsInfo()
    absl_logger.addFilter(drop)
    try:
        yield
    finally:
        absl_logger.removeFilter(drop)
        tfds.display_progress_bar(was_active)


def _remove_empty_download_dirs(root: Path) -> None:
    """TFDS's download manager makes ``downloads/extracted`` even when it reads local files."""
    for d in (root / "downloads" / "extracted", root / "downloads"):
        with contextlib.suppress(OSError):
            d.rmdir()  # only if empty


def _build(builder: GruxBuilder, name: str, data_dir: str | None) -> None:
    """Prepares ``builder`` printing one line, then writes its manifest."""
    source = data_dir or "canonical URLs"
    print(f"preparing {name} from {source} -> {builder.data_dir} ...", end=" ", flush=True)
    start = time.perf_counter()
    try:
        with _quiet_tfds():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=data_dir))
        _write_manifest(Path(builder.data_dir))
    except BaseException:
        print("failed", flush=True)
        raise
    finally:
        _remove_empty_download_dirs(Path(builder.data_dir_root))
    print(f"done ({time.perf_counter() - start:.1f} s)", flush=True)


def prepare(name: str, *, data_dir: str | None = None, prepared_dir: str | None = None,
            config: str | None = None, repair: bool = False) -> GruxBuilder:
    """Prepares a dataset (once) and returns its builder, ready for ``as_data_source``.

    A dataset already prepared is verified (see the module docstring) and reused. A new
    preparation prints one line (``preparing NAME from DATA_DIR -> DIR ... done (1.2 s)``).

    Args:
      name: a name of :func:`list_datasets`, or a config name alone (``"etth1"``).
      data_dir: raw-files root (see the module docstring); ``None``:
        :func:`default_data_dir` (``$GRUX_DATA_DIR``, ``<repo>/../shared/data``, or download).
      prepared_dir: TFDS data dir; ``None``: ``$GRUX_TFDS_DIR`` or ``~/.cache/grux/tfds``.
      config: the builder config when ``name`` is a bare builder name (``"ett"``).
      repair: when the prepared copy is corrupt, remove it (it is derived data) and prepare
        it again, printing what was done, instead of raising PreparedDataCorruptError.

    Raises:
      UnknownDatasetError: unknown name/config.
      FileNotFoundError: ``data_dir`` is not a directory.
      SourceFileError: a raw file is missing or has the wrong sha256 (message: the file
        path, the expected sha256 and, when corrupt, the actual one).
      PreparedDataCorruptError: the prepared copy is corrupt (and ``repair`` is false).
    """
    builder_name, config = resolve(name, config)
    name = _dataset_name(builder_name, config)
    prepared_dir = prepared_dir or default_prepared_dir()
    folder = _dataset_dir(builder_name, config, prepared_dir)
    corrupt: PreparedDataCorruptError | None = None
    try:
        builder = get_builder(builder_name, prepared_dir=prepared_dir, config=config)
        if _prepared(builder):
            verify_prepared(builder)
            return builder
    except PreparedDataCorruptError as e:
        if not repair:
            raise
        corrupt = e
    data_dir = data_dir or default_data_dir()
    if data_dir is not None and not Path(data_dir).is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} is not a directory")
    with _prepare_lock(builder_name, config, prepared_dir):
        if corrupt is not None and folder.exists():
            print(f"{name}: the prepared copy is damaged ({corrupt.detail}); removing {folder} "
                  f"and preparing it again", flush=True)
            shutil.rmtree(folder)
        builder = get_builder(builder_name, prepared_dir=prepared_dir, config=config)
        # Another process (a second job, another host process) may have prepared it meanwhile.
        if not _prepared(builder):
            _build(builder, name, data_dir)
    return builder


@contextlib.contextmanager
def _prepare_lock(builder_name: str, config: str | None, prepared_dir: str):
    """An exclusive ``flock`` on ``<prepared_dir>/.<builder>[_<config>].lock``: processes that
    start training on the same unprepared dataset at once prepare it one after another."""
    root = Path(prepared_dir)
    root.mkdir(parents=True, exist_ok=True)
    tag = builder_name + (f"_{config}" if config else "")
    with open(root / f".{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _require(name: str, reader: str, builder_names: tuple[str, ...]) -> None:
    """Raises UnknownDatasetError unless ``name`` belongs to one of ``builder_names``."""
    if resolve(name)[0] not in builder_names:
        raise UnknownDatasetError(f"{reader} reads datasets of {builder_names}, not {name!r}")


def _read_split(name: str, split: str, data_dir: str | None,
                prepared_dir: str | None) -> tuple[GruxBuilder, list[dict]]:
    """Prepares ``name`` and returns its builder and all examples of ``split``, in order."""
    builder = prepare(name, data_dir=data_dir, prepared_dir=prepared_dir)
    if split not in builder.info.splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; its splits: "
                         f"{sorted(builder.info.splits)}")
    source = builder.as_data_source(split)
    return builder, list(source.__getitems__(list(range(len(source)))))


def _str(b: bytes | str) -> str:
    return b.decode("utf-8") if isinstance(b, bytes) else b


def text_lines(name: str, split: str, *, data_dir: str | None = None,
               prepared_dir: str | None = None) -> list[str]:
    """The text of a language-modelling split.

    * ``ptb``: one str per line, its space-separated words without the leading/trailing
      space (append ``<eos>`` per line): 42,068 / 3,370 / 3,761 lines; with one ``<eos>``
      per line 929,589 / 73,760 / 82,430 tokens.
    * ``ptb_char``: one str per line of the char files, single-char symbols separated by
      single spaces (``_`` = word boundary); line i matches ``ptb`` line i.
    * ``tiny_shakespeare``: ``[text]``, the split's characters as one str; the split is by
      characters of the 1,115,394-char file: ``train`` = first 90 % (1,003,854 chars),
      ``validation`` = next 5 % (55,770), ``test`` = last 5 % (55,770).

    ``split``: ``train``, ``validation`` or ``test``.
    """
    _require(name, "text_lines", TEXT_BUILDERS)
    _, examples = _read_split(name, split, data_dir, prepared_dir)
    return [_str(e["text"]) for e in examples]


def piano_rolls(name: str, split: str, *, data_dir: str | None = None,
                prepared_dir: str | None = None) -> list[np.ndarray]:
    """Pieces of a polyphonic music corpus as uint8 ``(T_i, 88)`` 0/1 piano rolls.

    ``name``: ``jsb_chorales``, ``nottingham``, ``musedata``, ``piano_midi`` (or
    ``polyphonic_music/<name>``); column k = MIDI note 21 + k. ``split``: ``train``,
    ``validation``, ``test`` (JSB 229/76/77, Nottingham 694/173/170, MuseData 524/135/124,
    Piano-midi 87/12/25 pieces), in the source order.
    """
    _require(name, "piano_rolls", ("polyphonic_music",))
    _, examples = _read_split(name, split, data_dir, prepared_dir)
    return [np.asarray(e["roll"], dtype=np.uint8) for e in examples]


def _series_dict(example: dict) -> dict[str, Any]:
    return {"values": np.asarray(example["values"], dtype=np.float32),
            "dates": [_str(d) for d in example["dates"]],
            "columns": [_str(c) for c in example["columns"]]}


def series(name: str, split: str, *, data_dir: str | None = None,
           prepared_dir: str | None = None) -> dict[str, Any]:
    """Rows of one split of a dated series.

    Returns ``{"values": float32 (T, C), "dates": list[str] (T,), "columns": list[str] (C,)}``.

    * ETT ``etth1``/``etth2``/``ettm1``/``ettm2``: C = 7 (HUFL, HULL, MUFL, MULL, LUFL, LULL,
      OT); Informer 12/4/4-month splits: ETTh ``train`` rows [0, 8640), ``validation``
      [8640, 11520), ``test`` [11520, 14400); ETTm [0, 34560) / [34560, 46080) /
      [46080, 57600).
    * ``weather``: C = 21; Autoformer 70/10/20 %: [0, 36887) / [36887, 42157) /
      [42157, 52696).
    * ``airline_passengers``: C = 1, only split ``full`` (144 months).

    Split ``full`` is the whole series. Forecasting windows of ``validation``/``test`` start
    ``lookback`` rows *before* the split start, so a windowed evaluation needs
    :func:`series_full` (the whole series plus the borders), not just this split's rows.
    """
    _require(name, "series", SERIES_BUILDERS)
    _, examples = _read_split(name, split, data_dir, prepared_dir)
    return _series_dict(examples[0])


def series_full(name: str, *, data_dir: str | None = None,
                prepared_dir: str | None = None) -> dict[str, Any]:
    """The whole series of :func:`series` plus its split borders.

    Returns ``{"values", "dates", "columns"}`` as in :func:`series` for all rows, and
    ``"borders": {split: (start, stop)}`` (row ranges; empty for ``airline_passengers``).
    """
    _require(name, "series_full", SERIES_BUILDERS)
    builder, examples = _read_split(name, SERIES_FULL_SPLIT, data_dir, prepared_dir)
    return {**_series_dict(examples[0]), "borders": dict(builder.spec().borders)}


def m4_series(split: str = "test", *, data_dir: str | None = None,
              prepared_dir: str | None = None) -> list[dict[str, Any]]:
    """M4 hourly, 414 series as ``{"id": str, "train": float32 (T_i,), "test": float32 (48,)}``.

    ``split="test"``: ``train`` = the full history (700..960 values), ``test`` = the official
    48-step horizon (``Hourly-test.csv``). ``split="validation"``: the usual holdout inside
    the history, ``train`` = history[:-48], ``test`` = history[-48:].
    """
    if split not in ("test", "validation"):
        raise ValueError(f"m4_series split must be 'test' or 'validation', got {split!r}")
    _, history = _read_split("m4_hourly", "train", data_dir, prepared_dir)
    _, horizon = _read_split("m4_hourly", "test", data_dir, prepared_dir)
    out = []
    for h, t in zip(history, horizon, strict=True):
        values = np.asarray(h["values"], dtype=np.float32)
        train, test = ((values, np.asarray(t["values"], dtype=np.float32)) if split == "test"
                       else (values[:-HORIZON], values[-HORIZON:]))
        out.append({"id": _str(h["id"]), "train": train, "test": test})
    return out


def parallel_text(name: str = "multi30k", split: str = "train", *, data_dir: str | None = None,
                  prepared_dir: str | None = None) -> list[dict[str, str]]:
    """Aligned sentences ``{"en": str, "de": str, "fr": str}``, one per line of the split.

    Multi30k splits: ``train`` 29,000, ``validation`` 1,014, ``test`` (= ``test_2016_flickr``)
    1,000, ``test_2016_flickr`` 1,000, ``test_2017_flickr`` 1,000, ``test_2017_mscoco`` 461,
    ``test_2018_flickr`` 1,071.
    """
    _require(name, "parallel_text", ("multi30k",))
    _, examples = _read_split(name, split, data_dir, prepared_dir)
    return [{k: _str(v) for k, v in e.items()} for e in examples]


def spoken_digits(split: str = "train", *, data_dir: str | None = None,
                  prepared_dir: str | None = None) -> list[dict[str, Any]]:
    """Free Spoken Digit Dataset recordings as ``{"audio": int16 (T,), "label": int,
    "speaker": str, "index": int, "file": str}``, in source order (digit, speaker, index).

    ``audio`` is the WAV's samples at 8 kHz (:data:`grux.data.builders.fsdd.SAMPLE_RATE`),
    ``label`` the spoken digit 0-9, ``index`` the recording index 0-49, ``file`` the file
    name ``{digit}_{speaker}_{index}.wav``. ``split``: ``train`` (index 5-49, 2,700) and
    ``test`` (index 0-4, 300), the official split; ``full`` (also ``all``), every recording
    (3,000 of 6 speakers), for speaker-independent splits made from ``speaker``.
    """
    _, examples = _read_split("fsdd", "full" if split == "all" else split, data_dir,
                              prepared_dir)
    return [{"audio": np.asarray(e["audio"], dtype=np.int16), "label": int(e["label"]),
             "speaker": _str(e["speaker"]), "index": int(e["index"]), "file": _str(e["file"])}
            for e in examples]


def librispeech(split: str = "train_clean100", *, data_dir: str | None = None,
                prepared_dir: str | None = None) -> list[dict[str, Any]]:
    """LibriSpeech utterances as ``{"audio": int16 (T,), "text": str, "speaker": int,
    "chapter": int, "id": str}``, in source order (speaker, chapter, utterance).

    ``audio`` is the FLAC's samples at 16 kHz (:data:`grux.data.builders.librispeech.
    SAMPLE_RATE`), ``text`` the transcript as in the corpus (upper case, apostrophes),
    ``id`` ``<speaker>-<chapter>-<utterance>`` (e.g. ``84-121123-0000``). ``split``, one per
    corpus subset (the corpus folder name, e.g. ``train-clean-100``, is accepted too); the
    splits are speaker-disjoint by the corpus's design:

    * ``train_clean100``: 28,539 utterances, 100.6 h, 251 speakers;
    * ``train_clean360``: 104,014 utterances, 363.6 h, 921 speakers;
    * ``train_other500``: 148,688 utterances, 496.7 h, 1,166 speakers;
    * ``dev_clean`` 2,703 / 5.4 h, ``dev_other`` 2,864 / 5.3 h, ``test_clean`` 2,620 / 5.4 h,
      ``test_other`` 2,939 / 5.1 h (40, 33, 40 and 33 speakers).

    The whole split is read into memory: about 115 MB per hour of audio (``train_clean100``
    ~11.6 GB, a dev or test split ~0.6 GB). For the training subsets, read examples on demand
    from ``prepare("librispeech").as_data_source(split)`` instead. Preparing needs all seven
    subsets: extracted under ``<data_dir>/LibriSpeech/`` (no network), or, without a data
    dir, the archives are downloaded (~61 GB; see :mod:`grux.data.builders.librispeech`).
    """
    _, examples = _read_split("librispeech", LIBRISPEECH_SPLIT_OF_FOLDER.get(split, split),
                              data_dir, prepared_dir)
    return [{"audio": np.asarray(e["audio"], dtype=np.int16), "text": _str(e["text"]),
             "speaker": int(e["speaker"]), "chapter": int(e["chapter"]), "id": _str(e["id"])}
            for e in examples]
