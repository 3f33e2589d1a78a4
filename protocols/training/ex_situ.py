"""Ex-situ mode: the network trained in floating point, then programmed onto the arrays.

After the float epochs the arrays are calibrated (the calibration stored as epoch -1, like an
in-situ run's), every array is strongly reset and the float weights are write-verified onto
them (:meth:`ArrayNetwork.program_weights`: the G pair takes the weight, the g pair what G left
over); the run then commits one more epoch, phase ``ex-situ``, whose accuracies are measured
through the backend.
"""

from __future__ import annotations

import numpy as np

from hil.protocol import RunContext
from hil.store.training import save_snapshots
from protocols.training.devices import ArrayNetwork
from protocols.training.float_network import FloatNetwork
from protocols.training.params import HybridTrainingParams


def transfer(ctx: RunContext, params: HybridTrainingParams, seed: int, fnet: FloatNetwork) -> ArrayNetwork:
    """Calibrate the arrays, store the calibration and write-verify ``fnet``'s weights onto them."""
    net = ArrayNetwork(ctx, params, np.random.default_rng([seed, 3]))
    snaps = net.calibrate()
    save_snapshots(ctx.store, ctx.run_id, -1, snaps)
    net.program_weights(fnet.w)
    return net
