"""The parameters of a ``hybrid-training`` run, composed from one small model per concern.

Each group is a :class:`hil.protocol.Params` of its own (validated alone, typed alone), and
:class:`HybridTrainingParams` inherits them all: the run's parameters stay one flat set of names
(``rram-hil run hybrid-training --set name=value``, the run's stored parameters JSON), while
code that needs one concern takes that group as its type (``device_request(DeviceParams)``,
``next_phase(ScheduleParams)``), and any ``HybridTrainingParams`` is one.

Groups (in the order ``rram-hil protocols`` lists them):

- :class:`NetworkParams`: synapse, mode, layer sizes, activation, bias, weight range, init;
- :class:`DeviceParams`: the devices a run asks for (states, area ratio ``k``, variability);
- :class:`ScheduleParams`: epochs and the switch from dynamic to fine tuning;
- :class:`LearningParams`: learning rate, loss, data subset, seed, evaluation batch;
- :class:`PulseParams`: the read and potentiation pulses and the pulse-count mapping;
- :class:`ResetParams`: the strong reset and the occasional-reset policy;
- :class:`VerifyParams`: write-verify (resets, ex-situ, resume);
- :class:`RecordParams`: what is recorded besides the epoch figures.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import field_validator, model_validator

from hil.protocol import Params
from protocols.params import quantity
from protocols.training.activations import activation_names, is_activation_name
from protocols.training.mnist import IMAGE_SIDE, N_CLASSES

#: The device kinds of each synapse (one array per kind and layer): G+, G- and g+, g-.
KINDS_HYBRID = ("Gp", "Gm", "gp", "gm")
KINDS_SINGLE = ("Gp", "Gm")


def _int_list(value: Any) -> Any:
    """``"500,100"``, ``"500-100"`` or ``500`` as a list of ints (others pass to validation)."""
    if isinstance(value, str):
        parts = [p for p in value.replace("-", ",").replace(" ", ",").split(",") if p]
        return [int(p) for p in parts]
    if isinstance(value, int):
        return [value]
    return value


def _int_text(value: Any) -> Any:
    """``"7"`` (a ``--set`` value) as ``7``, for fields whose allowed values are a set of ints."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _float_list(value: Any) -> Any:
    """``"0.5,2"`` or ``0.5`` as a list of floats (others pass to validation)."""
    if isinstance(value, str):
        return [float(p) for p in value.replace(" ", ",").split(",") if p]
    if isinstance(value, int | float):
        return [float(value)]
    return value


class NetworkParams(Params):
    """The network: synapse, training mode, layer sizes, neurons, weight range and initial weights."""

    synapse: Literal["fp", "single", "hybrid"] = quantity(
        "hybrid", "", "fp (floats), single (G+ - G-) or hybrid ((G+ - G-) + (g+ - g-))"
    )
    mode: Literal["in-situ", "ex-situ"] = quantity(
        "in-situ", "", "in-situ training on the arrays, or ex-situ (float training, then write-verify)"
    )
    hidden: list[int] = quantity([250], "", "hidden layer sizes, e.g. 250 or 500,100")
    input_pool: Literal[1, 2, 4, 7, 14, 28] = quantity(
        1, "", "average-pool the 28 x 28 images in blocks of this side (1: 784 inputs; 7: 16 inputs)"
    )
    activation: str = quantity(
        "sigmoid",
        "",
        f"neuron activation ({', '.join(activation_names())}, or iv-run:RUN[:ARRAY:ROW:COL], "
        "the I-V curve of a neuron device measured in run RUN of the same database)",
    )
    bias: bool = quantity(True, "", "a bias row per layer (driven at the full read voltage)")
    w_max: list[float] = quantity(
        [0.5, 2.0], "", "weight of a full G window per layer (one value, or one per layer)"
    )
    init_scale: float = quantity(
        1.0, "", "initial weights uniform in +-init_scale/sqrt(fan-in)", ge=0, le=100
    )

    _split_hidden = field_validator("hidden", mode="before")(_int_list)
    _pool_text = field_validator("input_pool", mode="before")(_int_text)
    _split_w_max = field_validator("w_max", mode="before")(_float_list)

    @field_validator("hidden")
    @classmethod
    def _hidden_sizes(cls, value: list[int]) -> list[int]:
        if not value or any(n < 1 or n > 100_000 for n in value):
            raise ValueError("hidden sizes must be 1..100000 (at least one layer)")
        return value

    @field_validator("w_max")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(not (0 < w <= 1e6) or not math.isfinite(w) for w in value):
            raise ValueError("w_max values must be > 0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NetworkParams:
        if len(self.w_max) not in (1, len(self.hidden) + 1):
            raise ValueError(f"w_max: give one value or one per layer ({len(self.hidden) + 1})")
        if not is_activation_name(self.activation):
            raise ValueError(
                f"activation: '{self.activation}' is not known ({', '.join(activation_names())}, "
                "or iv-run:RUN[:ARRAY:ROW:COL])"
            )
        return self

    @property
    def sizes(self) -> list[int]:
        """Neurons per layer, inputs first: ``[(28 / input_pool)^2, *hidden, 10]``."""
        side = IMAGE_SIDE // self.input_pool
        return [side * side, *self.hidden, N_CLASSES]

    @property
    def n_layers(self) -> int:
        """Weight layers (hidden layers + the output layer)."""
        return len(self.hidden) + 1

    def layer_w_max(self, layer: int) -> float:
        """The weight of a full G window in ``layer`` (1-based)."""
        return self.w_max[0] if len(self.w_max) == 1 else self.w_max[layer - 1]

    def kinds(self) -> tuple[str, ...]:
        """The device kinds of the synapse (one array each per layer); none for ``fp``."""
        return KINDS_HYBRID if self.synapse == "hybrid" else KINDS_SINGLE if self.synapse == "single" else ()


class DeviceParams(Params):
    """What a run asks of its devices: states, the big-to-small area ratio and (twin) variability."""

    states: int = quantity(50, "", "conductance states of a big (G) device", ge=2, le=100_000)
    g_states: int | None = quantity(
        None, "", "states of a small (g) device (default: states)", ge=2, le=100_000
    )
    g_states_mode: Literal["window", "step"] = quantity(
        "window",
        "",
        "twin: g_states != states keeps g's step (G step / k) and widens its window (window), "
        "or keeps the window and refines the step (step)",
    )
    k: float = quantity(10.0, "", "area ratio of big to small devices (twin)", ge=1, le=1000)
    c2c_sigma_over_mu: float | None = quantity(
        None, "", "twin: programming (cycle-to-cycle) sigma/mu of dG (default: the preset's)", ge=0, le=10
    )
    d2d_sigma: float | None = quantity(
        None, "", "twin: device-to-device sigma of Gmin, relative (default: the preset's)", ge=0, le=5
    )
    big_diameter_m: float = quantity(1e-6, "m", "twin: diameter of a big (G) device", gt=0, le=1e-3)

    @property
    def small_states(self) -> int:
        """States of a small (g) device: ``g_states``, else ``states``."""
        return self.g_states if self.g_states is not None else self.states


class ScheduleParams(Params):
    """The epochs and when the hybrid synapse switches from dynamic to fine tuning."""

    epochs: int = quantity(10, "", "training epochs", ge=1, le=10_000)
    switch_threshold_pp: float = quantity(
        0.5, "pp", "switch to fine tuning when the training accuracy gains less than this", ge=0, le=100
    )
    min_dynamic_epochs: int = quantity(1, "", "dynamic-tuning epochs before a switch is considered", ge=1)
    max_dynamic_epochs: int | None = quantity(
        None, "", "switch after this many dynamic epochs at the latest", ge=1
    )


class LearningParams(Params):
    """Learning rate and loss, the data (subset, directory), the seed and the evaluation batch."""

    lr: float = quantity(0.1, "", "learning rate", gt=0, le=100)
    loss: Literal["cross_entropy", "mse"] = quantity(
        "cross_entropy",
        "",
        "training loss: cross_entropy (output error y - t) or mse (y - t times f'); MSE is recorded either way",
    )
    train_limit: int | None = quantity(None, "", "use the first N training images", ge=1)
    test_limit: int | None = quantity(None, "", "use the first N test images", ge=1)
    data_dir: str | None = quantity(None, "", "directory of the MNIST IDX files (default: $RRAM_HIL_DATA)")
    seed: int | None = quantity(
        None,
        "",
        "seed of initial weights, shuffling and (twin) devices; default: the run's seed",
        ge=0,
        le=2**32 - 1,
    )
    eval_batch: int = quantity(1000, "", "images per batched VMM when evaluating", ge=1, le=100_000)


class PulseParams(Params):
    """The read drive, the potentiation pulse and how a weight change becomes pulse counts."""

    fine_counts: Literal["same", "rescaled"] = quantity(
        "same",
        "",
        "fine tuning: the pulse counts computed for G applied to g (same: the paper's array "
        "selection, g's gain 1/k scales the update), or recomputed from g's own step (rescaled)",
    )
    pulse_mapping: Literal["round", "stochastic", "coincidence"] = quantity(
        "round",
        "",
        "pulse count per cell: round(|dW|/step), stochastic rounding, or the coincidences of "
        "stochastic row and column pulse streams (expected count |dW|/step)",
    )
    fine_pulse_mapping: Literal["same", "round", "stochastic", "coincidence"] = quantity(
        "stochastic",
        "",
        "fine tuning's pulse count per cell (the g pair's updates): one of pulse_mapping's "
        "mappings, or the same as pulse_mapping (same)",
    )
    bit_length: int = quantity(
        10,
        "",
        "pulse_mapping=coincidence: time slots of the row and column streams per update",
        ge=1,
        le=1000,
    )
    read_voltage_V: float = quantity(0.5, "V", "largest VMM drive (inputs scaled to it)", gt=0, le=5)
    pulse_amplitude_V: float = quantity(2.0, "V", "potentiation pulse amplitude", gt=0, le=20)
    pulse_width_s: float = quantity(100e-6, "s", "potentiation pulse width", gt=0, le=1)


class ResetParams(Params):
    """The strong reset (pulses of one reset) and the occasional reset of saturating pairs."""

    reset_amplitude_V: float = quantity(-4.0, "V", "strong-reset pulse amplitude", ge=-20, lt=0)
    reset_width_s: float = quantity(100e-6, "s", "strong-reset pulse width", gt=0, le=1)
    reset_pulses: int = quantity(5, "", "pulses of a strong reset", ge=1, le=10_000)
    reset_level: float = quantity(
        0.9, "", "reset a pair when a device exceeds this fraction of its window", gt=0, le=1
    )
    reset_interval: int = quantity(
        1000,
        "",
        "samples between saturation checks of the largest layer (smaller layers: proportionally more often)",
        ge=1,
    )


class VerifyParams(Params):
    """Write-verify of the training protocol (after a reset, ex-situ transfer, resume)."""

    verify_iterations: int = quantity(
        3, "", "write-verify iterations (resets, ex-situ, resume)", ge=1, le=100
    )
    transfer_scale: Literal["fit", "w_max"] = quantity(
        "fit",
        "",
        "ex-situ: a full (median) G window is each layer's largest trained |weight| (fit), "
        "or the w_max parameter",
    )


class RecordParams(Params):
    """What a run records besides the epoch figures: weight history, weight error, every pulse."""

    track: int = quantity(3, "", "synapses of the last layer whose weight history is recorded", ge=0, le=100)
    track_interval: int = quantity(500, "", "samples between weight-history points", ge=1)
    werror_interval: int = quantity(50, "", "samples between |W_target - W| measurements", ge=1)
    log_pulses: bool = quantity(False, "", "log every programmed cell's pulses (small networks only)")


# pydantic orders the fields of a model by its bases' MRO from the last base to the first, so
# the groups are listed here in reverse: NetworkParams' fields come first.
class HybridTrainingParams(
    RecordParams,
    VerifyParams,
    ResetParams,
    PulseParams,
    LearningParams,
    ScheduleParams,
    DeviceParams,
    NetworkParams,
):
    """All parameters of a ``hybrid-training`` run: every group's fields, one flat set of names."""
