"""Rows of results (dicts) as CSV text: the one writer the sweep report and the probe share."""

from __future__ import annotations

import csv
import io
from typing import Any


def as_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with a column for every key any row has, in the order they first appear (blank where absent)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
