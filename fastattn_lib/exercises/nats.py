"""Notebook 05's exercises (NAtS)."""

from __future__ import annotations

from .core import Exercise

EXERCISES: dict[str, Exercise] = {}
