"""The sans-IO flood router and its parts."""

from meshchat.router.actions import Action, Carry, Deliver, Drop, Transmit, Uncarry
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.router.policy import FirstCopy, ManagedFlood, NaiveFlood, RelayPolicy

__all__ = [
    "Action",
    "Carry",
    "Deliver",
    "Drop",
    "FirstCopy",
    "FloodRouter",
    "ManagedFlood",
    "NaiveFlood",
    "RelayPolicy",
    "RouterConfig",
    "Transmit",
    "Uncarry",
]
