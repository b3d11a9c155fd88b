"""Sizes and times in words, as every message says them."""

from __future__ import annotations


def format_bytes(n: float) -> str:
    """`1.5 GB`, `320.0 kB`, `12 bytes`."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def at_step(step: int | None, dt_ms: float | None) -> str:
    """A step as messages and tables say it: `2`, or with `dt_ms` (a spec's step length) `2 (20 ms)`;
    `never` for None."""
    if step is None:
        return "never"
    return str(step) if dt_ms is None else f"{step} ({ms(step, dt_ms)})"


def ms(step: float, dt_ms: float) -> str:
    """`20 ms`, `2.5 ms`: a number of steps as time."""
    return f"{step * dt_ms:g} ms"
