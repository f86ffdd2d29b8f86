"""``python -m grux.data``: see :mod:`grux.data.cli`."""
import sys

from grux.data.cli import main

sys.exit(main())
