"""Figures of training runs (one run: Fig. 4A-F and 5C-E style panels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.store import Store
from hil.store.training import epoch_arrays_df, epochs_df, tracked_df, weight_errors_df
from protocols.plots import use_agg


def plot_training_run(store: Store, run_id: int, path: Path) -> Path | None:
    """Accuracy, MSE, update frequency per array, tracked weights and the |W error| histogram."""
    ep = epochs_df(store, run_id)
    if ep.empty:
        return None
    info = store.run(run_id)
    p = info.parameters
    plt = use_agg()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    (ax_acc, ax_mse, ax_freq), (ax_w, ax_parts, ax_err) = axes
    ax_acc.plot(ep["epoch"], ep["train_accuracy"], "o-", label="train")
    ax_acc.plot(ep["epoch"], ep["test_accuracy"], "s-", label="test")
    switch = ep[ep["switched"].astype(bool)]
    for e in switch["epoch"]:
        for ax in (ax_acc, ax_mse, ax_freq):
            ax.axvline(e + 0.5, color="grey", ls="--", lw=1)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="(A) accuracy")
    ax_acc.legend(fontsize=8)
    ax_mse.plot(ep["epoch"], ep["mse"], "o-", color="tab:red")
    ax_mse.set(xlabel="epoch", ylabel="MSE", title="(C) mean squared error", yscale="log")
    arr = epoch_arrays_df(store, run_id)
    if not arr.empty:
        for name, grp in arr[arr["epoch"] > 0].groupby("array"):
            if grp["update_frequency"].max() > 0:
                ax_freq.plot(grp["epoch"], grp["update_frequency"], "o-", ms=3, label=name)
        ax_freq.set_yscale("log")
        ax_freq.legend(fontsize=7, ncol=2)
    ax_freq.set(
        xlabel="epoch", ylabel="cells updated / (cells x samples)", title="(B) weight-update frequency"
    )
    tr = tracked_df(store, run_id)
    if not tr.empty:
        n = int(ep["samples"].max() or 1)
        tr = tr.assign(t=tr["epoch"] - 1 + tr["sample"] / n)
        tr.loc[tr["epoch"] == 0, "t"] = 0.0
        for (r, c), grp in tr.groupby(["row", "col"]):
            (line,) = ax_w.plot(grp["t"], grp["weight"], "-", lw=1, label=f"W[{r},{c}]")
            if grp["weight_small"].notna().any():
                ax_parts.plot(
                    grp["t"], grp["weight_big"], "-", lw=1, color=line.get_color(), label=f"big [{r},{c}]"
                )
                ax_parts.plot(
                    grp["t"],
                    grp["weight_small"],
                    ":",
                    lw=1.2,
                    color=line.get_color(),
                    label=f"small [{r},{c}]",
                )
        ax_w.legend(fontsize=7)
        if ax_parts.lines:
            ax_parts.legend(fontsize=6, ncol=2)
    ax_w.set(xlabel="epoch", ylabel="weight", title="(D/E) tracked synapses")
    ax_parts.set(xlabel="epoch", ylabel="weight", title="(F) big and small parts")
    we = weight_errors_df(store, run_id)
    if not we.empty:
        cmap = plt.get_cmap("viridis")
        epochs = sorted(we["epoch"].unique())
        for i, e in enumerate(epochs):
            grp = we[we["epoch"] == e]
            centers = np.sqrt(np.maximum(grp["bin_lo"], 1e-7) * grp["bin_hi"])
            ax_err.plot(
                centers, grp["count"], "-", color=cmap(i / max(len(epochs) - 1, 1)), label=f"epoch {e}"
            )
        ax_err.set_xscale("log")
        ax_err.legend(fontsize=6)
    ax_err.set(
        xlabel="|W_target - W| (mean per synapse)", ylabel="synapses", title="(5C-E) weight error, last layer"
    )
    desc = f"{p.get('synapse')} states {p.get('states')}"
    if p.get("synapse") == "hybrid":
        desc += f" g_states {p.get('g_states') or p.get('states')} k {p.get('k')}"
    fig.suptitle(f"run {run_id}: hybrid-training, {desc}, lr {p.get('lr')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
