"""A discrete-event simulator that runs meshchat's real router on many virtual nodes.

Used by ``bench/flood.py`` to compare relay policies, and by tests to check flooding end to end
without radios. It imports only the pure core (router, wire, identity).
"""

from meshchat.sim.engine import EPOCH_MS, Simulator, simulate
from meshchat.sim.medium import BLE, LAN, MEDIA, Medium
from meshchat.sim.metrics import BroadcastResult, RunResult, percentile
from meshchat.sim.scenario import DENSITIES, Churn, Mobility, Partition, Scenario

__all__ = [
    "BLE",
    "DENSITIES",
    "EPOCH_MS",
    "LAN",
    "MEDIA",
    "BroadcastResult",
    "Churn",
    "Medium",
    "Mobility",
    "Partition",
    "RunResult",
    "Scenario",
    "Simulator",
    "percentile",
    "simulate",
]
