"""In-situ training of a fully connected network with the RRAM hybrid synapse (Choi et al. 2021).

Methods (choices the paper leaves open are marked CHOICE; ``docs/training.md`` discusses them;
the parameters are :mod:`~protocols.training.params`):

- Network: fully connected, sizes ``784 - hidden... - 10`` (the paper's 784-250-10), batch size
  1, learning rate ``lr`` (0.1). CHOICE: activation ``sigmoid`` (pluggable, see
  :mod:`protocols.training.activations`), loss ``0.5 * sum (y - t)^2`` on one-hot targets (the paper
  reports the mean squared error, Fig. 4C); a bias row per layer, driven at the full read voltage.
- Synapses (:mod:`~protocols.training.layout`): ``fp`` (floats, the baseline,
  :mod:`~protocols.training.float_network`), ``single`` (``W = a (G+ - G-)``) or ``hybrid``
  (``W = a ((G+ - G-) + (g+ - g-))``). Every device lives in its own array:
  ``L{l}_Gp, L{l}_Gm`` (and ``L{l}_gp, L{l}_gm``) of shape ``(inputs + 1, outputs)``. The gain
  1/k of g is physical: on the twin the g arrays are fabricated with a device area k times
  smaller than the G arrays; on hardware they are whatever the station's arrays are. The only
  software factor is ``a`` (weight per siemens, one per layer, the read-out circuit's gain),
  and it multiplies all four arrays alike.
- Forward/backward (:mod:`~protocols.training.devices`): one backend ``vmm`` over all arrays of a
  layer with signs ``+1, -1, +1, -1`` (native VMM where the backend has it, else conductance
  reads). Inputs are scaled so their largest magnitude is driven at ``read_voltage_V``; the
  sensed current is scaled back.
- Update: ``dW = -lr * delta x^T``. CHOICE (``pulse_mapping=round``): cell (i, j) of the device
  that must grow (+ for dW > 0, - for dW < 0) receives ``round(|dW_ij| / (a * step))`` identical
  potentiation pulses, ``step`` being that array's calibrated mean conductance change per pulse.
  With non-negative inputs this is exactly the crossbar's pulse-coincidence outer product
  ``round(r_i c_j)`` with ``r = x`` and ``c = lr |delta| / (a step)``: one ``program_outer`` call
  per array per update. ``stochastic`` rounds up with probability equal to the fraction (one
  ``program_cells`` call per array listing the pulsed cells). ``coincidence``: stochastic row and
  column pulse streams of ``bit_length`` slots whose coincidences give each cell on average
  ``|dW_ij| / (a * step)`` pulses (:mod:`~protocols.training.coincidence`), one
  ``program_streams`` call per array (two with signed inputs). Depression is never used for updates.
- Phases (hybrid, :mod:`~protocols.training.phase`): dynamic tuning updates only G; when the
  training accuracy gains less than ``switch_threshold_pp`` percentage points over an epoch,
  fine tuning updates only g, G frozen.
- Occasional reset (Burr et al. 2015): every ``reset_interval`` samples and at each epoch end
  the active pair arrays are read; a pair with a device above ``reset_level`` of its calibrated
  window gets a strong reset of both devices (``reset_pulses`` x ``reset_amplitude_V``) and its
  net conductance is re-programmed onto one device by write-verify. Resets are counted.
- Calibration (arrays): each array is strongly reset and read (Gmin per cell), given ``states``
  (``g_states``) pulses and read (Gmax per cell), and reset again. The median window over the
  number of states is the array's ``step``; ``a = w_max / median window of G``.
- Per epoch (:mod:`~protocols.training.loop`, :mod:`~protocols.training.metrics`) one
  transaction commits the ``epochs`` row (accuracies, MSE, pulses, resets, update frequency,
  energy and update-time estimates), per-array statistics, a conductance snapshot of every
  array, the tracked synapses' weight history and the |W_target - W| histogram of the last
  layer, and the checkpoint; ``rram-hil resume RUN`` re-programs the arrays to the last
  committed snapshot (write-verify) and continues with the next epoch
  (:mod:`~protocols.training.resume`).
- ``mode=ex-situ`` (:mod:`~protocols.training.ex_situ`): train in floating point, program the
  targets onto the arrays by write-verify, and measure inference accuracy through the backend.
"""

from __future__ import annotations

from pathlib import Path

from hil.errors import ConfigError
from hil.protocol import Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import ArrayRequest, Pulse
from protocols.training.activations import check_activation
from protocols.training.layout import device_request, needed_arrays
from protocols.training.loop import TrainingRun
from protocols.training.mnist import resolve_mnist_dir
from protocols.training.params import HybridTrainingParams
from protocols.training.plots import plot_training_run


class HybridTraining(Protocol):
    """The ``hybrid-training`` protocol: the arrays a run needs, its checks, the run, its figure."""

    name = "hybrid-training"
    title = "In-situ training of a fully connected network with RRAM hybrid synapses (Choi et al. 2021)"
    Params = HybridTrainingParams
    supports_resume = True

    def required_arrays(self, params: HybridTrainingParams, station: Station) -> list[ArrayRequest]:
        """Per layer one array per device kind, g arrays k times smaller, with the devices the run
        parameters ask for (states, variability); a twin fabricates them so."""
        if params.synapse == "fp":
            return []
        return [ArrayRequest(spec, device_request(params, spec.name)) for spec in needed_arrays(params)]

    def seed(self, params: HybridTrainingParams) -> int | None:
        return params.seed

    def preflight(self, params: HybridTrainingParams, station: Station) -> None:
        """The pulses and read voltage within the station's limits, calibration's pulses in one
        call, and the data where it should be."""
        limits = station.limits
        if params.synapse != "fp":
            limits.check_pulse(Pulse(params.pulse_amplitude_V, params.pulse_width_s), 1)
            limits.check_pulse(
                Pulse(params.reset_amplitude_V, params.reset_width_s), params.reset_pulses, "reset_"
            )
            limits.check_read_voltage(params.read_voltage_V)
            biggest = max(params.states, params.small_states)
            if biggest > limits.max_pulses_per_call:
                raise ConfigError(
                    f"states: calibration needs {biggest} pulses per cell in one call; station allows "
                    f"{limits.max_pulses_per_call} (max_pulses_per_call)"
                )
        resolve_mnist_dir(params.data_dir)

    def preflight_store(self, params: HybridTrainingParams, store: Store) -> None:
        """A measured activation (``iv-run:RUN``) names an I-V run of this database."""
        check_activation(params.activation, store)

    def execute(self, ctx: RunContext, params: HybridTrainingParams) -> None:
        """Calibrate, train every epoch (committing each), and for ``mode=ex-situ`` transfer."""
        TrainingRun(ctx, params).run()

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        return plot_training_run(store, run_id, path)
