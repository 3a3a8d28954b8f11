"""Speech for the voice tests (espeak-ng)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.voice.speech import speak


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("speech") / "speech.wav")
