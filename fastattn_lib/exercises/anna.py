"""Notebook 02's exercises (ANNA against softmax)."""

from __future__ import annotations

from .core import Exercise

EXERCISES: dict[str, Exercise] = {}
