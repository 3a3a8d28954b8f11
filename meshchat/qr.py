"""QR codes: drawn in the terminal with ``segno``, read from image files with ``zxing-cpp``.

Drawing needs only ``segno`` (a dependency). Reading is optional: it needs the ``zxing-cpp``
and ``Pillow`` packages (``pip install 'meshchat[qr]'``); without them :func:`read_qr` raises
:class:`UsageError` saying so, and the safety number can still be compared by eye.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, TextIO

from meshchat.errors import UsageError

__all__ = ["MAX_IMAGE_BYTES", "draw_qr", "qr_png", "read_qr"]

#: The largest image file :func:`read_qr` opens.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: The most pixels a decoded image may have (a 12-megapixel photo is about 12e6).
_MAX_PIXELS = 40_000_000


def draw_qr(text: str, out: TextIO) -> None:
    """Draw ``text`` as a QR code with Unicode half blocks on ``out``."""
    import segno

    segno.make(text, error="m").terminal(out=out, compact=True)


def qr_png(text: str, scale: int = 8) -> bytes:
    """``text`` as a QR code in a PNG image (what another device would photograph)."""
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def _decoder() -> tuple[Any, Any]:
    try:
        import zxingcpp
        from PIL import Image
    except ImportError as exc:
        raise UsageError(
            "reading QR images needs the zxing-cpp and Pillow packages "
            "(pip install 'meshchat[qr]'); compare the numbers by eye instead"
        ) from exc
    return zxingcpp, Image


def read_qr(path: Path) -> list[str]:
    """The texts of every QR code found in the image file at ``path`` (maybe none).

    Raises :class:`UsageError` when the file cannot be read or is not an image.
    """
    zxingcpp, image_module = _decoder()
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise UsageError(f"{path} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        with image_module.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > _MAX_PIXELS:
                raise UsageError(f"{path} has too many pixels to scan")
            gray = image.convert("L")
            results = zxingcpp.read_barcodes(gray)
    except UsageError:
        raise
    except Exception as exc:  # Pillow raises many kinds for a damaged or foreign file
        raise UsageError(f"{path} is not an image that can be scanned") from exc
    return [str(r.text) for r in results]
