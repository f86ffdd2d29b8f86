import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


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
