"""Stream framing: each frame is a 2-byte big-endian length followed by that many bytes.

:class:`FrameDecoder` is sans-IO: feed it whatever a socket returned, get back complete frames.
It never buffers more than one maximum frame plus its header, and an empty or oversized
declared length raises :class:`FramingError` (the link should then be closed: a stream that
lost its framing cannot be resynchronised).
"""

from __future__ import annotations

from meshchat.errors import FramingError

__all__ = ["HEADER_SIZE", "FrameDecoder", "frame"]

HEADER_SIZE = 2


def frame(payload: bytes, max_size: int) -> bytes:
    """``payload`` with its length header. Raises :class:`FramingError` if it is too large."""
    if not 0 < len(payload) <= max_size:
        raise FramingError(f"frame of {len(payload)} bytes outside 1..{max_size}")
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


class FrameDecoder:
    """Reassembles length-prefixed frames from a byte stream."""

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_size: int) -> None:
        if not 0 < max_size < 1 << (8 * HEADER_SIZE):
            raise ValueError("max_size does not fit the length header")
        self._max_size = max_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame now complete, in order."""
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= HEADER_SIZE:
            size = int.from_bytes(self._buffer[:HEADER_SIZE], "big")
            if size == 0 or size > self._max_size:
                self._buffer.clear()
                raise FramingError(f"declared frame size {size} outside 1..{self._max_size}")
            if len(self._buffer) < HEADER_SIZE + size:
                break
            frames.append(bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + size]))
            del self._buffer[: HEADER_SIZE + size]
        return frames
