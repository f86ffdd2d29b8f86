import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Caches that default to the user's home, pointed into the session's scratch dir instead.
# GRUX_TFDS_DIR: prepared datasets (grux.data.paths.resolve_tfds_dir, else ~/.cache/grux/tfds);
# TFDS_DATA_DIR: TFDS's own default (~/tensorflow_datasets); MPLCONFIGDIR: matplotlib's
# config and font cache; XDG_CACHE_HOME: anything else that caches under ~/.cache.
HOME_CACHES = {"GRUX_TFDS_DIR": "tfds", "TFDS_DATA_DIR": "tensorflow_datasets",
               "MPLCONFIGDIR": "matplotlib", "XDG_CACHE_HOME": "cache"}
_scratch: str | None = None


def pytest_configure(config):
    """Before any test (and before pytest-xdist starts its workers, which run this again in
    their own process and get their own dir): a fresh scratch dir for this process, with the
    variables of HOME_CACHES pointing into it, so no test writes into the user's home. The
    variables are inherited by subprocesses the tests start. Removed at the end."""
    global _scratch
    _scratch = tempfile.mkdtemp(prefix="grux-tests-")
    for var, sub in HOME_CACHES.items():
        os.environ[var] = os.path.join(_scratch, sub)


def pytest_unconfigure(config):
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def data_dir():
    """The shared datasets directory beside the checkout (``../shared/data``)."""
    d = Path(os.environ.get("GRUX_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not d.is_dir():
        pytest.skip(f"shared data directory not found at {d}")
    return d
