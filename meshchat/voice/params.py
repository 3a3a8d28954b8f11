"""What a voice note is: the codec parameters and the limits, in one place.

A voice note is one Opus stream (RFC 6716) in an Ogg container (RFC 7845), sent as a file of
kind ``voice`` and media type ``audio/ogg``. The sender encodes mono speech sampled at 16 kHz
(Opus "wideband", all that speech needs) at a target of 16 kbit/s, variable bit rate, in 60 ms
frames with the encoder tuned for speech (``voip``). Measured on espeak-ng speech
(``bench/voice.py``) that comes to about 15 kbit/s (1.9 kB per second of speech) with the
container's overhead; silence costs 3 kbit/s and loud noise, the worst case, 20 kbit/s. So a
note of the longest allowed length, 5 minutes, is at most about 760 kB and fits the 1 MiB that
the file policy allows over a Bluetooth-only path.

An Opus decoder always runs at 48 kHz; a received note is decoded to 48 kHz mono 16-bit PCM,
which is what is played or written as WAV (5 minutes: 28.8 MB).
"""

from __future__ import annotations

__all__ = [
    "BITRATE",
    "CHANNELS",
    "DECODE_RATE",
    "ENCODE_RATE",
    "FRAME_MS",
    "MAX_NOTE_BYTES",
    "MAX_SECONDS",
    "MAX_SOURCE_BYTES",
    "MEDIA_TYPE",
    "SUFFIX",
]

#: The media type a voice note is announced with.
MEDIA_TYPE = "audio/ogg"
#: The file name suffix of a voice note.
SUFFIX = ".ogg"
#: Samples per second fed to the encoder (Opus wideband).
ENCODE_RATE = 16_000
#: Samples per second out of the decoder (Opus always decodes at 48 kHz).
DECODE_RATE = 48_000
CHANNELS = 1
#: Target bit rate of the encoder (variable: quiet parts take less).
BITRATE = 16_000
#: Opus frame length: longer frames spend fewer bytes on packet and page headers.
FRAME_MS = 60
#: The longest voice note, made or accepted.
MAX_SECONDS = 300
#: The most bytes a received voice note may have: 5 minutes at the encoder's worst case
#: (about 2.5 times the target) plus the container. A larger "voice note" is refused unread.
MAX_NOTE_BYTES = 1 << 20
#: The largest audio file ``send-voice --file`` reads (5 minutes of 48 kHz stereo 32-bit float
#: is 115 MB).
MAX_SOURCE_BYTES = 128 << 20
