"""A direct message's path stays readable: at most ``TARGET`` (30) functions from
``Node.send_text`` to the receiver's store, as ``bench/dm_path.py`` measures it (its docstring
gives the counting rule). A pass-through wrapper added on the path fails this test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).parents[1] / "bench" / "dm_path.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dm_path_bench", BENCH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {BENCH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_a_direct_messages_path_crosses_at_most_the_target(tmp_path: Path) -> None:
    bench = load_bench()
    tracer = await bench.measure(tmp_path)
    names = {name for _, name in tracer.path}
    # The measurement really followed the message from one end to the other.
    assert "Node.send_text" in names
    assert any(name.endswith("add_incoming") for name in names)
    assert any(name.endswith("open_message") for name in names)
    assert len(tracer.path) <= bench.TARGET == 30
