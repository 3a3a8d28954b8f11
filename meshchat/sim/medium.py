"""Radio media: how long a frame occupies the air, how late it arrives, what RSSI it reports.

A medium is a plain description; the simulator applies it. The numbers are deliberately round
and documented rather than fitted to one chip:

* **BLE**: meshchat's BLE links are GATT connections. A frame waits for the next connection
  event (uniform over a 7.5-45 ms interval, the range phones negotiate) and is then sent at an
  effective 250 kbit/s (1M PHY minus ATT/L2CAP overhead and empty connection events; the
  testbed notes put real links at 10-100 kB/s). RSSI follows a log-distance path loss model
  (-59 dBm at 1 m, exponent 2.5) plus Gaussian shadowing of ``rssi_noise_db``.
* **LAN**: Wi-Fi or Ethernet reached over TCP; 1-3 ms per hop, 20 Mbit/s of usable airtime,
  no RSSI (a TCP socket does not report one), so RSSI-driven policies fall back to their
  defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BLE", "LAN", "MEDIA", "Medium"]


@dataclass(frozen=True, slots=True)
class Medium:
    """Timing and signal model of one kind of link."""

    name: str
    range_m: float  # default radio range when a scenario does not set one
    bitrate_bps: float  # effective rate while a frame is on the air
    overhead_bytes: int  # per-frame header and framing bytes on the air
    latency_min_us: int  # fixed part of the delay after the frame left the air
    latency_jitter_us: int  # uniform extra delay, drawn once per transmission
    has_rssi: bool
    rssi_1m_dbm: float = -59.0
    path_loss_exponent: float = 2.5
    rssi_noise_db: float = 3.0

    def airtime_us(self, frame_len: int) -> int:
        """Microseconds the sender's radio is busy with one frame."""
        return int((frame_len + self.overhead_bytes) * 8_000_000 / self.bitrate_bps)

    def rssi_at(self, distance_m: float) -> float:
        """Mean RSSI (dBm) at ``distance_m`` under the log-distance model, before shadowing."""
        d = max(distance_m, 0.1)
        return self.rssi_1m_dbm - 10.0 * self.path_loss_exponent * math.log10(d)


BLE = Medium(
    name="ble",
    range_m=30.0,
    bitrate_bps=250_000.0,
    overhead_bytes=20,
    latency_min_us=7_500,
    latency_jitter_us=37_500,
    has_rssi=True,
)

LAN = Medium(
    name="lan",
    range_m=50.0,
    bitrate_bps=20_000_000.0,
    overhead_bytes=60,
    latency_min_us=1_000,
    latency_jitter_us=2_000,
    has_rssi=False,
)

MEDIA: dict[str, Medium] = {m.name: m for m in (BLE, LAN)}
