"""Make ``backtest_helpers`` importable: with ``--import-mode=importlib`` test folders are not on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
