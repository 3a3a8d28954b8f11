"""Accounts: one person's several devices, named by a signed device list."""

from meshchat.account.book import AccountBook, ListChange
from meshchat.account.devicelist import (
    MAX_DEVICES,
    MAX_REVOKED,
    DeviceEntry,
    DeviceList,
    Verdict,
    check_first,
    check_successor,
)

__all__ = [
    "MAX_DEVICES",
    "MAX_REVOKED",
    "AccountBook",
    "DeviceEntry",
    "DeviceList",
    "ListChange",
    "Verdict",
    "check_first",
    "check_successor",
]
