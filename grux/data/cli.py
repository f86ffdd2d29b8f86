"""``grux-data`` / ``python -m grux.data``: list and prepare the TFDS datasets.

Usage::

    python -m grux.data list [--data_dir D] [--prepared_dir P]
    python -m grux.data prepare NAME|all [--config C] [--data_dir D] [--prepared_dir P]

``list`` prints every dataset name (``builder`` or ``builder/config``) and whether it is
prepared under the prepared dir. ``prepare`` prepares one dataset, or all of them.
``--data_dir`` is the raw-files root laid out like ``shared/data`` (default
``$GRUX_DATA_DIR``, else ``<repo>/../shared/data`` if it exists, else download from the
canonical URLs); ``--prepared_dir`` is where
TFDS writes (default ``$GRUX_TFDS_DIR`` or ``~/.cache/grux/tfds``). Exit status: 0 ok,
1 a raw file is missing/corrupt, 2 usage error (e.g. unknown dataset name).
"""
from __future__ import annotations

import argparse
import sys

from grux.data import datasets
from grux.data.builders.common import SourceFileError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grux-data",
                                description="List and prepare the grux TFDS datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("list", "list datasets and whether each is prepared"),
                        ("prepare", "prepare one dataset (or 'all')")):
        s = sub.add_parser(name, help=help_)
        if name == "prepare":
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
        done = datasets.is_prepared(name, prepared_dir=prepared_dir)
        print(f"{name:<{width}}{'yes' if done else 'no'}")


def _prepare(args) -> None:
    if args.name == "all":
        if args.config:
            raise datasets.UnknownDatasetError("--config cannot be used with 'all'")
        names = datasets.list_datasets()
    else:
        names = [args.name]
    for name in names:
        builder = datasets.prepare(name, config=args.config if name == args.name else None,
                                   data_dir=args.data_dir, prepared_dir=args.prepared_dir)
        print(f"prepared {name}: {builder.data_dir}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``grux-data``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        (_list if args.command == "list" else _prepare)(args)
    except datasets.UnknownDatasetError as e:
        print(f"grux-data: error: {e}", file=sys.stderr)
        return 2
    except (SourceFileError, FileNotFoundError) as e:
        print(f"grux-data: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
