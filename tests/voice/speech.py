"""Speech for the voice tests, spoken by espeak-ng (a Debian package; .ci/run installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["SENTENCE", "speak"]

SENTENCE = (
    "Hello, this is a voice note sent over the mesh. "
    "The quick brown fox jumps over the lazy dog. Testing one, two, three."
)


def speak(path: Path, text: str = SENTENCE) -> Path:
    """``text`` spoken into a WAV file at ``path`` (22050 Hz mono 16-bit)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run([espeak, "-w", str(path), text], check=True, timeout=30)
    return path
