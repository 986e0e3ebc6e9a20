"""Fixtures shared by the adapters' tests (``tests/trio``, ``tests/conformance``)."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import pytest

WavMaker = Callable[..., Path]
"""What the ``make_wav`` fixture gives."""


@pytest.fixture
def make_wav(tmp_path: Path) -> WavMaker:
    """Write a WAV file of ``seconds`` of one repeated sample (bytes 1, 2, ...); return its path."""

    def make(
        name: str = "speech.wav",
        *,
        seconds: float = 1.0,
        rate: int = 16000,
        channels: int = 1,
        width: int = 2,
    ) -> Path:
        path = tmp_path / name
        frames = round(seconds * rate)
        sample = bytes(range(1, width + 1))
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(channels)
            wav.setsampwidth(width)
            wav.setframerate(rate)
            wav.writeframes(sample * channels * frames)
        return path

    return make
