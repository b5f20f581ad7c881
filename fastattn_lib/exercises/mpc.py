"""Notebook 03's exercises (MPC)."""

from __future__ import annotations

from .core import Exercise

EXERCISES: dict[str, Exercise] = {}
