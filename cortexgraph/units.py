"""Sizes in words, as every message says them."""

from __future__ import annotations


def format_bytes(n: float) -> str:
    """`1.5 GB`, `320.0 kB`, `12 bytes`."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"
