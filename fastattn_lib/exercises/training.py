"""Notebook 04's exercises (Match2 and induction heads)."""

from __future__ import annotations

from .core import Exercise

EXERCISES: dict[str, Exercise] = {}
