"""``grux-data`` / ``python -m grux.data``: list and prepare the TFDS datasets.

Usage::

    python -m grux.data list [--data_dir D] [--prepared_dir P]
    python -m grux.data prepare NAME|all [--config C] [--data_dir D] [--prepared_dir P]
    python -m grux.data verify NAME|all [--config C] [--prepared_dir P]

``list`` prints every dataset name (``builder`` or ``builder/config``) and its state under
the prepared dir: ``yes`` (prepared, files match their recorded checksums), ``no``,
``corrupt`` (a prepared file is missing or changed) or ``unverified`` (prepared by an older
grux, no checksums yet). ``prepare`` prepares one dataset, or all of them; a corrupt prepared
copy is removed and prepared again (it says so). ``verify`` checks prepared datasets against
their recorded checksums (one written by an older grux is read in full once and gets them)
and repairs nothing: exit status 1 and the damaged file named when one is corrupt.
``--data_dir`` is the raw-files root laid out like ``shared/data`` (default
``$GRUX_DATA_DIR``, else ``<repo>/../shared/data`` if it exists, else download from the
canonical URLs); ``--prepared_dir`` is where
TFDS writes (default ``$GRUX_TFDS_DIR`` or ``~/.cache/grux/tfds``). Exit status: 0 ok,
1 a data error (a raw file missing/corrupt, a corrupt prepared dataset; one line on stderr),
2 usage error (e.g. unknown dataset name).
"""
from __future__ import annotations

import argparse
import sys
import time

from grux.data import datasets
from grux.data.builders.common import DataError, PreparedDataCorruptError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grux-data",
                                description="List and prepare the grux TFDS datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("list", "list datasets and whether each is prepared"),
                        ("prepare", "prepare one dataset (or 'all'); re-prepare a corrupt one"),
                        ("verify", "check prepared datasets (or 'all') against their "
                                   "checksums")):
        s = sub.add_parser(name, help=help_)
        if name in ("prepare", "verify"):
            s.add_argument("name", help="dataset name (see 'list'), a config name, or 'all'")
            s.add_argument("--config", default=None, help="builder config, e.g. etth1")
        s.add_argument("--data_dir", default=None,
                       help="raw-files root (default $GRUX_DATA_DIR, else "
                            "<repo>/../shared/data if present, else download)")
        s.add_argument("--prepared_dir", default=None,
                       help="TFDS data dir (default $GRUX_TFDS_DIR or ~/.cache/grux/tfds)")
    return p


def _list(args) -> None:
    prepared_dir = args.prepared_dir or datasets.default_prepared_dir()
    data_dir = args.data_dir or datasets.default_data_dir()
    print(f"prepared_dir: {prepared_dir}")
    print(f"data_dir:     {data_dir or '(none: raw files are downloaded)'}")
    names = datasets.list_datasets()
    width = max(map(len, names)) + 2
    print(f"{'dataset':<{width}}prepared")
    for name in names:
        print(f"{name:<{width}}{datasets.prepared_state(name, prepared_dir=prepared_dir)}")


# Left out of 'all' (prepared by name only): a 61 GB download, or its extracted archives.
NOT_IN_ALL = ("librispeech",)


def _names(args) -> list[str]:
    if args.name == "all":
        if args.config:
            raise datasets.UnknownDatasetError("--config cannot be used with 'all'")
        if args.command == "prepare":
            print(f"not in 'all' (prepare by name): {', '.join(NOT_IN_ALL)}")
            return [n for n in datasets.list_datasets() if n not in NOT_IN_ALL]
        return datasets.list_datasets()
    return [args.name]


def _prepare(args) -> None:
    for name in _names(args):
        builder = datasets.prepare(name, config=args.config if name == args.name else None,
                                   data_dir=args.data_dir, prepared_dir=args.prepared_dir,
                                   repair=True)
        print(f"prepared {name}: {builder.data_dir}")


def _verify(args) -> int:
    """Checks each prepared dataset; every corrupt one is one line on stderr (exit 1)."""
    prepared_dir = args.prepared_dir or datasets.default_prepared_dir()
    status = 0
    for name in _names(args):
        config = args.config if name == args.name else None
        if not datasets.is_prepared(name, prepared_dir=prepared_dir, config=config):
            if args.name != "all":
                raise FileNotFoundError(f"dataset {name} is not prepared under {prepared_dir}")
            continue
        start = time.perf_counter()
        try:
            builder = datasets.get_builder(name, prepared_dir=prepared_dir, config=config)
            checked = datasets.verify_prepared(builder)
        except PreparedDataCorruptError as e:
            print(f"grux-data: error: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {'ok' if checked else 'ok (read in full; checksums not writable)'} "
              f"({time.perf_counter() - start:.2f} s)")
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``grux-data``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return {"list": _list, "prepare": _prepare, "verify": _verify}[args.command](args) or 0
    except datasets.UnknownDatasetError as e:
        print(f"grux-data: error: {e}", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError) as e:
        print(f"grux-data: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
