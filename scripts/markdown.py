"""A DataFrame as a markdown table (the benchmark scripts print these into the README)."""

from __future__ import annotations

import pandas as pd


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """Rows of ``df`` (index first) as a GitHub markdown table; floats to ``digits`` significant."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.{digits}g}"
        return str(value)

    header = ["", *map(str, df.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in df.iterrows():
        lines.append("| " + " | ".join([str(name), *map(cell, row.tolist())]) + " |")
    return "\n".join(lines)
