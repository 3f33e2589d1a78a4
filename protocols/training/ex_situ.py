"""Ex-situ mode: the network trained in floating point, then programmed onto the arrays.

After the float epochs the arrays are calibrated (the calibration stored as epoch -1, like an
in-situ run's), every array is strongly reset and the float weights are write-verified onto
them (:meth:`ArrayNetwork.program_weights`: the G pair takes the weight, the g pair what G left
over); the run then commits one more epoch, phase ``ex-situ``, whose accuracies are measured
through the backend.

The weight a full G window stands for is, by default (``transfer_scale=fit``), each layer's
largest trained ``|weight|``: with ``w_max`` (0.5 and 2.0) about 3 % of a 784-250-10 network's
first-layer weights lie beyond the pair's range after 3 float epochs, and clipping them cost
3.6 points of test accuracy, while the weights within range were transferred to a tenth of a G
step. The transfer's weight error per layer (RMS, largest, and the share clipped) is recorded
as the event ``transferred``.
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
    if params.transfer_scale == "fit":
        params = params.model_copy(update={"w_max": fitted_w_max(fnet.w)})
    net = ArrayNetwork(ctx, params, np.random.default_rng([seed, 3]))
    snaps = net.calibrate()
    save_snapshots(ctx.store, ctx.run_id, -1, snaps)
    net.program_weights(fnet.w)
    ctx.log_event("transferred", transfer_scale=params.transfer_scale, w_max=list(params.w_max),
                  layers=transfer_errors(net, fnet.w))  # fmt: skip
    return net


def fitted_w_max(weights: list[np.ndarray]) -> list[float]:
    """Each layer's largest ``|weight|``: the weight a full G window then stands for."""
    return [max(float(np.max(np.abs(w))), 1e-12) for w in weights]


def transfer_errors(net: ArrayNetwork, targets: list[np.ndarray]) -> list[dict[str, float]]:
    """Per layer, the transferred weights (read back) against their targets: RMS and largest
    error, RMS of the targets, and the share of targets beyond the pair's largest weight."""
    out = []
    for lay, target in zip(net.layers, targets, strict=True):
        err = net.weights(lay) - target
        # each cell's largest weight either way: + device at Gmax, - device at Gmin (both pairs)
        plus = sum(lay.gmax[k] - lay.gmin[m] for k, m in (("Gp", "Gm"), ("gp", "gm")) if k in lay.names)
        minus = sum(lay.gmax[m] - lay.gmin[k] for k, m in (("Gp", "Gm"), ("gp", "gm")) if k in lay.names)
        beyond = (target > lay.alpha * plus) | (-target > lay.alpha * minus)
        out.append({
            "layer": lay.index,
            "rms_error": float(np.sqrt(np.mean(err**2))),
            "max_error": float(np.max(np.abs(err))),
            "rms_weight": float(np.sqrt(np.mean(target**2))),
            "clipped_fraction": float(np.mean(beyond)),
        })  # fmt: skip
    return out
