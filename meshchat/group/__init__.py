"""Private groups: an admin-signed member list, sender keys, and re-keying on every change.

* :mod:`.roster` — who is in a group and who may change it, signed by an admin;
* :mod:`.sender_keys` — the per-epoch keys: a group address and header key from the epoch
  secret, and one hash-ratchet sender chain per member (suite GROUP payloads);
* :mod:`.control` — the control messages that travel over pairwise sealed sessions
  (roster updates with the epoch secret, sender-key shares), split into parts that fit a packet;
* :mod:`.book` — the pure state machine that ties them together for one node.
"""
