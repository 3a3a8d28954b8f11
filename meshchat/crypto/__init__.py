"""Payload crypto, all on libsodium (PyNaCl) and, for sessions, the ``x3dh`` and
``doubleratchet`` packages.

* :mod:`.box` -- suite BOX (direct messages to contacts without a signed prekey);
* :mod:`.channel` -- suite CHANNEL and the public channel;
* :mod:`.direct` -- suite RATCHET: sealed, forward-secret direct messages, built from
  :mod:`.prekeys` (signed prekeys, replay cache), :mod:`.sessions` (X3DH + Double Ratchet),
  :mod:`.sealed` (the sealed envelope), :mod:`.tags` (rotating addresses) and
  :mod:`.padding` (size buckets).
"""

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import PUBLIC_CHANNEL, ChannelKey, derive_channel_key
from meshchat.crypto.direct import DirectSuite

__all__ = ["PUBLIC_CHANNEL", "BoxSuite", "ChannelKey", "DirectSuite", "derive_channel_key"]
