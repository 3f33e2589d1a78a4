"""Resume: the run's checkpoint, and the network rebuilt from the store at the last committed epoch.

Every epoch commits, in one transaction, a conductance snapshot of every array (or the float
weights) and the checkpoint (:class:`RunState`). ``rram-hil resume RUN`` restores the state,
re-applies the stored calibration (Gmin/Gmax snapshots of epoch -1, no new calibration),
write-verifies every device to its snapshot of the last committed epoch
(:func:`restore_arrays`), or loads the float weights (:func:`restore_float`), and the run
continues with the next epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil.errors import ConfigError
from hil.protocol import RunContext
from hil.store.training import load_snapshot
from protocols.training.devices import ArrayNetwork
from protocols.training.float_network import FloatNetwork
from protocols.training.params import HybridTrainingParams


@dataclass
class RunState:
    """A run's progress beyond its networks, as its checkpoint keeps it.

    Attributes:
        phase: the phase of the next epoch (``fp``, ``dynamic``, ``fine``, ``ex-situ``).
        history: training accuracy (%) after every committed epoch, epoch 0 first.
        dynamic_epochs: dynamic-tuning epochs done.
        switch_epoch: the first fine-tuning epoch, once switched.
        total_resets: pairs strongly reset over the run.
        last_test: test accuracy (%) of the last committed epoch.
    """

    phase: str
    history: list[float] = field(default_factory=list)
    dynamic_epochs: int = 0
    switch_epoch: int | None = None
    total_resets: int = 0
    last_test: float = math.nan

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The checkpoint committed with ``epoch``."""
        return {
            "epoch": epoch, "phase": self.phase, "history": self.history, "dynamic_epochs": self.dynamic_epochs,
            "switch_epoch": self.switch_epoch, "total_resets": self.total_resets, "last_test": self.last_test,
        }  # fmt: skip

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> tuple[int, RunState]:
        """The last committed epoch and the state of a checkpoint."""
        return int(state["epoch"]), cls(
            phase=str(state["phase"]),
            history=[float(a) for a in state["history"]],
            dynamic_epochs=int(state.get("dynamic_epochs", 0)),
            switch_epoch=state.get("switch_epoch"),
            total_resets=int(state.get("total_resets", 0)),
            last_test=float(state.get("last_test", float("nan"))),
        )


def restore_arrays(ctx: RunContext, params: HybridTrainingParams, seed: int, epoch: int) -> ArrayNetwork:
    """The network on the arrays as committed at ``epoch``: the stored calibration, and every
    device write-verified to its snapshot.

    Raises:
        ConfigError: the run has no calibration or no snapshot of an array at ``epoch``.
    """
    store, run_id = ctx.store, ctx.run_id
    net = ArrayNetwork(ctx, params, np.random.default_rng([seed, 3, epoch]))
    snaps = {}
    for lay in net.layers:
        for name in lay.read_names:
            for kind in ("gmin", "gmax"):
                m = load_snapshot(store, run_id, -1, name, kind)
                if m is None:
                    raise ConfigError(f"resume: run {run_id} has no {kind} calibration of array '{name}'")
                snaps[(name, kind)] = m
    net.apply_calibration(snaps)
    for lay in net.layers:
        for kind, name in lay.names.items():
            target = load_snapshot(store, run_id, epoch, name)
            if target is None:
                raise ConfigError(f"resume: run {run_id} has no snapshot of '{name}' at epoch {epoch}")
            net.write_verify_devices(lay, kind, target)
    return net


def float_snapshot_name(layer: int) -> str:
    """The snapshot ``array`` under which a float run keeps ``layer``'s (1-based) weights."""
    return f"fp_L{layer}"


def restore_float(ctx: RunContext, params: HybridTrainingParams, epoch: int) -> FloatNetwork:
    """The float network as committed at ``epoch``.

    Raises:
        ConfigError: the run has no float weights at ``epoch``.
    """
    weights = []
    for i in range(params.n_layers):
        m = load_snapshot(ctx.store, ctx.run_id, epoch, float_snapshot_name(i + 1), "weights")
        if m is None:
            raise ConfigError(f"resume: run {ctx.run_id} has no float weights at epoch {epoch}")
        weights.append(m)
    return FloatNetwork(weights)
