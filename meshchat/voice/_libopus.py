"""libopus's decoder called directly (ctypes), for what FFmpeg's wrapper cannot ask of it: a
lost frame recovered from the next packet's in-band FEC (``decode_fec = 1``), and a lost frame
concealed without a packet.

Which libopus: the copy the PyAV wheel ships beside FFmpeg (the one FFmpeg's encoder uses),
else the system's. Neither there: :func:`load` returns None and the caller decodes through
PyAV instead. Four functions of the stable libopus API are used (``opus_decoder_create``,
``opus_decode``, ``opus_decoder_destroy``, ``opus_strerror``), one mono decoder at 48 kHz per
talk; the output buffer always holds the ``frame_size`` samples libopus is allowed to write,
and libopus itself refuses a packet that is not Opus (a negative return: a
:class:`VoiceError` here). Loaded only when a talk is heard.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import weakref
from pathlib import Path

from meshchat.errors import VoiceError, VoiceReason

__all__ = ["MAX_FRAME_SAMPLES", "OpusDecoder", "load"]

#: The most samples one packet decodes to at 48 kHz (120 ms).
MAX_FRAME_SAMPLES = 5760
_RATE = 48_000
_OPUS_OK = 0


def _candidates() -> list[str]:
    found: list[str] = []
    try:
        import av

        site = Path(av.__file__).resolve().parent
        for folder in (site.parent / "av.libs", site / ".dylibs"):
            found += [str(p) for p in sorted(folder.glob("libopus*")) if p.is_file()]
    except (ImportError, OSError):
        pass
    system = ctypes.util.find_library("opus")
    if system:
        found.append(system)
    return found


@functools.cache
def load() -> ctypes.CDLL | None:
    """libopus with the decoder's functions typed, or None where there is none."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            create, decode = lib.opus_decoder_create, lib.opus_decode
            destroy, strerror = lib.opus_decoder_destroy, lib.opus_strerror
        except (OSError, AttributeError):
            continue
        create.restype = ctypes.c_void_p
        create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        decode.restype = ctypes.c_int
        decode.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int,
        ]  # fmt: skip
        destroy.restype = None
        destroy.argtypes = [ctypes.c_void_p]
        strerror.restype = ctypes.c_char_p
        strerror.argtypes = [ctypes.c_int]
        return lib
    return None


class OpusDecoder:
    """One mono libopus decoder at 48 kHz (``lib`` from :func:`load`)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        error = ctypes.c_int(0)
        state = lib.opus_decoder_create(_RATE, 1, ctypes.byref(error))
        if not state or error.value != _OPUS_OK:
            raise VoiceError(VoiceReason.DAMAGED, "libopus made no decoder")
        self._lib, self._state = lib, ctypes.c_void_p(state)
        self._out = (ctypes.c_int16 * MAX_FRAME_SAMPLES)()
        self._finalizer = weakref.finalize(self, lib.opus_decoder_destroy, self._state)

    def decode(self, packet: bytes | None, frame_samples: int, *, fec: bool = False) -> bytes:
        """16-bit samples: of ``packet``; with ``fec``, of the frame *before* ``packet`` as
        its in-band FEC has it (``frame_samples`` of them; libopus conceals where the packet
        carries none); of a lost frame, concealed, for ``packet`` None."""
        if not 0 < frame_samples <= MAX_FRAME_SAMPLES:
            raise ValueError("frame_samples out of range")
        size = len(packet) if packet is not None else 0
        n = self._lib.opus_decode(self._state, packet, size, self._out, frame_samples, int(fec))
        if n < 0:
            why = self._lib.opus_strerror(n) or b"?"
            raise VoiceError(VoiceReason.DAMAGED, f"libopus: {why.decode(errors='replace')}")
        return ctypes.string_at(self._out, n * 2)
