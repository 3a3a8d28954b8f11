"""The engine tests use the in-process mesh harness (``tests/mesh.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
