"""Plot helpers of protocols (plots are PNG files written after a run)."""

from __future__ import annotations

from typing import Any


def use_agg() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (plots are files, not windows)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
