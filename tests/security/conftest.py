"""The attack tests share the in-process mesh harness (``tests/mesh.py``) and a few helpers."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ holds the mesh harness; each test here imports it as a top-level module.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
