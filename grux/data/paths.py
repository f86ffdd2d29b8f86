"""Where datasets live: raw source files (``data_dir``) and prepared TFDS data (``tfds_dir``)."""
from __future__ import annotations

import os

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resolve_data_dir(configured: str = "") -> str:
    """Raw dataset files: ``configured`` (``config.data_dir``), else ``$GRUX_DATA_DIR``, else
    ``<repo>/../shared/data`` (the layout of this project's machines and CI)."""
    return (configured or os.environ.get("GRUX_DATA_DIR")
            or os.path.join(os.path.dirname(_REPO), "shared", "data"))


def resolve_tfds_dir(configured: str = "") -> str:
    """Prepared TFDS datasets: ``configured`` (``config.tfds_dir``), else ``$GRUX_TFDS_DIR``,
    else ``~/.cache/grux/tfds``."""
    return (configured or os.environ.get("GRUX_TFDS_DIR")
            or os.path.join(os.path.expanduser("~"), ".cache", "grux", "tfds"))


def data_dirs(config) -> dict[str, str]:
    """``{"data_dir", "prepared_dir"}`` of an experiment config (its ``data_dir`` and
    ``tfds_dir`` fields resolved as above): the keyword arguments of the readers in
    :mod:`grux.data.datasets`."""
    return {"data_dir": resolve_data_dir(config.data_dir),
            "prepared_dir": resolve_tfds_dir(config.tfds_dir)}
