"""Fixtures shared by the adapter's tests: ``make_wav`` now lives in ``tests/conftest.py``."""

from __future__ import annotations

from tests.conftest import WavMaker

__all__ = ["WavMaker"]
