"""What push-to-talk is: the codec parameters, the jitter buffer's bounds and the links it
uses, in one place.

Live speech is sent as raw Opus packets (RFC 6716; no Ogg container), one packet per
:data:`FRAME_MS` of mono 16 kHz sound at a target of :data:`BITRATE`, the encoder settings of a
voice note (:mod:`meshchat.voice.params`) except the frame length, the bit rate and in-band FEC
(each packet carries a coarse copy of the frame before it, for a listener that lost that one).
Why 20 ms and not the voice note's 60 ms: a frame must be complete before it is encoded, so its
length is added to the delay in full (60 ms frames would spend 40 % of a 150 ms mouth-to-ear
budget before the first byte leaves), a lost 20 ms frame is a click where a lost 60 ms frame is
a missing syllable, and the cost of more packets (about 180 bytes of packet header, signature
and sealing per frame: 50 frames a second of speech measured 98 kbit/s on the wire in all,
``bench/talk.py``) only matters on slow links, which push-to-talk does not use.

Only stream links to a direct neighbour carry live frames (:data:`FAST_TRANSPORTS`: LAN TCP).
A BLE link moves a few kB/s with fragmentation and per-write round trips, so 50 signed packets
a second would starve text on it and arrive later than any useful playout delay; a relay
(MQTT broker) or DHT path adds a broker hop and its queueing, and is shared by many users.
Those paths get voice notes instead.
"""

from __future__ import annotations

__all__ = [
    "BITRATE",
    "CONCEAL_FRAMES",
    "DECODE_RATE",
    "ENCODE_RATE",
    "EXPECTED_LOSS",
    "FAST_TRANSPORTS",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "IDLE_MS",
    "MAX_HELD",
    "MAX_OPUS_BYTES",
    "MAX_SECONDS",
    "MAX_TALKS",
    "PENDING_FRAMES",
    "PENDING_MS",
    "PLAYOUT_DELAY_MS",
    "RATE_PER_S",
]

#: Samples per second fed to the encoder (Opus wideband, as voice notes).
ENCODE_RATE = 16_000
#: Samples per second out of the decoder (Opus always decodes at 48 kHz).
DECODE_RATE = 48_000
#: Target bit rate of the encoder: above the voice notes' 16 kbit/s, because below about
#: 20 kbit/s libopus adds no in-band FEC (:mod:`meshchat.voice.live`).
BITRATE = 24_000
#: The loss (percent) the encoder is told to expect: it sizes the in-band FEC.
EXPECTED_LOSS = 10
#: Length of one live frame.
FRAME_MS = 20
#: Samples per frame given to the encoder.
FRAME_SAMPLES = ENCODE_RATE * FRAME_MS // 1000
#: Largest Opus packet accepted in a live frame: a 20 ms frame of speech at 24 kbit/s with its
#: FEC is about 50 bytes (at most about 110, measured on loud noise); RFC 6716 allows 1275,
#: which is far over what is sent.
MAX_OPUS_BYTES = 400
#: The jitter buffer's playout delay: a frame plays this long after the fastest arrival seen
#: of its place in the stream (frames later than that are dropped).
PLAYOUT_DELAY_MS = 60
#: Frames of a run of lost frames played as the decoder's estimate (fading out over the run,
#: :mod:`meshchat.talk.conceal`); further lost frames of the run are silence.
CONCEAL_FRAMES = 3
#: Most frames a jitter buffer holds ahead of playout (500 ms of sound); frames further ahead
#: are refused.
MAX_HELD = 25
#: Live talks received at once (a further offer is refused until one ends).
MAX_TALKS = 4
#: A talk with no frame for this long is over (its end frame was lost).
IDLE_MS = 2_000
#: The longest talk, sent or received.
MAX_SECONDS = 600
#: Frames that arrived before their talk's offer, kept for :data:`PENDING_MS` at most.
PENDING_FRAMES = 32
PENDING_MS = 1_000
#: Live frames taken from one link per second (50 are sent); beyond, dropped before any
#: signature check.
RATE_PER_S = 100
#: Link media that carry live frames (see the module docstring).
FAST_TRANSPORTS = frozenset({"lan"})
