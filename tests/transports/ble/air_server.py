"""Virtual Bluetooth controllers on one simulated air, each served over TCP as an HCI
transport: ``python air_server.py PORT [PORT...]`` prints ``ready`` once every port listens.

A ``meshchat daemon`` with ``ble.backend = "bumble"`` and ``ble.controller =
"tcp-client:127.0.0.1:PORT"`` then drives one of them as it would drive a USB dongle: the
whole host stack (HCI, L2CAP, ATT, GATT) runs in the daemon, only the radio is simulated.
"""

from __future__ import annotations

import asyncio
import sys

from bumble import hci
from bumble.transport import open_transport

from meshchat.transports.ble.virtual import RangedLink, VirtualController


async def serve(ports: list[int]) -> None:
    air = RangedLink()
    transports = []
    for index, port in enumerate(ports):
        transport = await open_transport(f"tcp-server:127.0.0.1:{port}")
        transports.append(transport)
        address = str(hci.Address.generate_static_address()).replace("/P", "")
        controller = VirtualController(
            f"air{index}",
            host_source=transport.source,
            host_sink=transport.sink,
            link=air,
            public_address=address,
        )
        controller.le_acl_data_packet_length = 251
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(serve([int(p) for p in sys.argv[1:]]))
