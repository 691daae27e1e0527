"""What every report writes with: one figure saver, one CSV writer, one Markdown table writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ecg_mi.utils.io import atomic_path

#: Resolution of every PNG ecg-mi writes (dots per inch of the figure's size).
FIGURE_DPI = 120


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Write the matplotlib figure ``fig`` as a PNG at :data:`FIGURE_DPI`, cropped to what it
    draws, atomically, and close it (pyplot keeps every open figure otherwise)."""
    import matplotlib.pyplot as plt  # whoever made ``fig`` has imported it already

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=FIGURE_DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV (no index, ``\\n`` line ends, floats to 6 significant digits), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")
    return Path(path)


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table, one line per row, cells as ``str`` writes them (format
    numbers before); columns are the header."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def with_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """``value [low, high]`` with ``digits`` decimals: an estimate and its confidence interval."""
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
