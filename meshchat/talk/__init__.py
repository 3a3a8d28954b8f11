"""Push-to-talk: live Opus frames to a contact over LAN links (pure parts).

* :mod:`~meshchat.talk.params` — frame length, jitter bounds, which links carry live frames;
* :mod:`~meshchat.talk.wire` — the offer, the live frame and sealing its sound;
* :mod:`~meshchat.talk.jitter` — the receiver's jitter buffer;
* :mod:`~meshchat.talk.listen` — the talks a node receives.

The audio (Opus in and out, frame by frame) is :mod:`meshchat.voice.live`; the node's part
(sending on links, receiving from them, playing) is :mod:`meshchat.node._talk`.
"""

from meshchat.talk.jitter import JitterBuffer, Verdict
from meshchat.talk.listen import Ended, Listener, Out, Started, Talk
from meshchat.talk.wire import KIND_TALK, LiveFrame, TalkOffer, open_sound, seal_sound

__all__ = [
    "KIND_TALK",
    "Ended",
    "JitterBuffer",
    "Listener",
    "LiveFrame",
    "Out",
    "Started",
    "Talk",
    "TalkOffer",
    "Verdict",
    "open_sound",
    "seal_sound",
]
