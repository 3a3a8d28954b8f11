"""What a passive listener on the LAN learns: no long-term key, no node id, no name.

Two daemons in network namespaces on one Ethernet link find each other by mDNS, link up over
TCP and exchange a direct message and a #mesh message, while everything one of them receives
is captured (AF_PACKET, as a sniffer on the wire would). The capture must show that the
exchange happened (mDNS adverts, TCP) but contain neither node's long-term public keys, its
node id (raw or hex, which the mDNS TXT record used to carry) nor its display name.
"""

from __future__ import annotations

from meshlab import Lab, read_capture, wait_state

from meshchat.identity import ContactCard


def test_a_passive_listener_learns_no_identity(lab: Lab) -> None:
    a, b = lab.host("alphanode"), lab.host("betanode")
    lab.link(a, b)
    capture_path = lab.root / "lan.capture"
    capture = lab.capture(b, capture_path)
    for host in (a, b):
        lab.init(host)
    lab.introduce(a, b)
    lab.start_all([a, b])
    lab.wait_neighbours(a, 1)
    sent = a.cli_json("send", "betanode", "a secret between us")
    wait_state(a, "betanode", sent["msg_id"], "delivered", timeout=30)
    a.cli_json("send", "#mesh", "hello everyone")
    lab.end(capture)

    received = b"".join(read_capture(capture_path))
    assert b"_meshchat" in received  # the capture is real: it holds a's mDNS adverts
    assert len(received) > 2000  # and the link's traffic
    leaks: list[bytes] = [b"a secret between us", b"hello everyone", b"alphanode", b"betanode"]
    for host in (a, b):
        identity = ContactCard.from_text(host.cli_json("id")["card"]).identity
        for value in (identity.node_id, identity.sign_public, identity.box_public):
            leaks += [value, value.hex().encode(), value.hex()[:16].encode()]
    assert [value for value in leaks if value in received] == []
