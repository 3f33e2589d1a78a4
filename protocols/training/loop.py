"""One training run: the data, the epochs, the per-sample forward, backward and update, and the
commit that ends every epoch.

Random streams (all from the run's seed ``s``): initial weights ``[s, 1]``, the sample order of
epoch ``e`` ``[s, 2, e]``, the stochastic pulse mapping ``[s, 3]`` (``[s, 3, e]`` after a resume
at epoch ``e``), the tracked synapses ``[s, 7]``.

An epoch (:meth:`TrainingRun.epoch`) shows every training image once, in a fresh order, batch
size 1: forward through every layer, the output error (``y - t`` for cross entropy, ``(y - t)
f'(z)`` for MSE), backward, and the update of every layer. On the arrays, every
``werror_interval`` samples the last layer's update is measured (reads before and after it), and
each layer's saturation is checked at an adaptive interval (:meth:`TrainingRun.train_arrays`).
The commit (:meth:`TrainingRun.commit`) evaluates train and test accuracy and MSE, decides the
next phase (:func:`~protocols.training.phase.next_phase`) and writes the epoch in one transaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hil.errors import ConfigError
from hil.protocol import RunContext
from hil.store.training import EpochRecord, commit_epoch, save_snapshots
from protocols.training import ex_situ
from protocols.training.activations import Activation, get_activation
from protocols.training.devices import ArrayNetwork
from protocols.training.float_network import FloatNetwork
from protocols.training.layout import Layer, layer_rows
from protocols.training.metrics import (
    EpochCounters,
    array_figures,
    tracked_arrays,
    tracked_float,
    weight_error_rows,
)
from protocols.training.mnist import N_CLASSES, Mnist, load_mnist, pool_images
from protocols.training.params import HybridTrainingParams
from protocols.training.phase import active_pair, next_phase
from protocols.training.resume import RunState, float_snapshot_name, restore_arrays, restore_float

#: ``weighted_sums(layer index, inputs)``: a layer's ``W^T x`` for one input vector.
WeightedSums = Callable[[int, np.ndarray], np.ndarray]


def load_data(params: HybridTrainingParams) -> Mnist:
    """MNIST limited to ``train_limit`` / ``test_limit`` images and pooled by ``input_pool``.

    Raises:
        ConfigError: a limit above the images there are.
    """
    data = load_mnist(params.data_dir)
    n_tr, n_te = len(data.train_labels), len(data.test_labels)
    for name, limit, n in (
        ("train_limit", params.train_limit, n_tr),
        ("test_limit", params.test_limit, n_te),
    ):
        if limit is not None and limit > n:
            raise ConfigError(f"{name}: {limit} is more than the {n} images in {data.directory}")
    tl = params.train_limit or n_tr
    sl = params.test_limit or n_te
    return Mnist(
        pool_images(data.train_images[:tl], params.input_pool),
        data.train_labels[:tl],
        pool_images(data.test_images[:sl], params.input_pool),
        data.test_labels[:sl],
        data.directory,
    )


class TrainingRun:
    """State of one training run (kept out of the protocol object, which is stateless)."""

    def __init__(self, ctx: RunContext, params: HybridTrainingParams) -> None:
        self.ctx = ctx
        self.p = params
        self.seed = params.seed if params.seed is not None else int(ctx.seed or 0)
        self.act: Activation = get_activation(params.activation, ctx.store)
        self.data = load_data(params)
        self.n_train = len(self.data.train_labels)
        self.targets = np.eye(N_CLASSES)[self.data.train_labels]
        self.in_situ = params.mode == "in-situ"
        self.arrays: ArrayNetwork | None = None
        self.fnet: FloatNetwork | None = None
        self.state = RunState("fp" if (params.synapse == "fp" or not self.in_situ) else "dynamic")
        #: samples between saturation checks of each layer (adapted during the run)
        self.check_every: list[int] = []
        track_rng = np.random.default_rng([self.seed, 7])
        last_rows = params.sizes[-2]
        n_track = min(params.track, last_rows * N_CLASSES)
        flat = (
            track_rng.choice(last_rows * N_CLASSES, size=n_track, replace=False)
            if n_track
            else np.zeros(0, int)
        )
        #: ``(n, 2)`` cells (row, col) of the last layer whose weight history is recorded
        self.tracked = np.stack(np.divmod(flat, N_CLASSES), axis=1).astype(np.int64)

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        """Calibrate and initialise (or resume), train every epoch, and for ``mode=ex-situ``
        transfer the float network onto the arrays."""
        ctx, p = self.ctx, self.p
        start_epoch = 1
        if ctx.resume_state and "epoch" in ctx.resume_state:
            start_epoch = self.resume(ctx.resume_state) + 1
        else:
            self.start()
        ctx.progress.start(p.epochs, f"{p.synapse} {'-'.join(map(str, p.sizes))} ({p.mode})")
        ctx.progress.advance(start_epoch - 1, status=self._status())
        for epoch in range(start_epoch, p.epochs + 1):
            self.epoch(epoch)
            ctx.progress.advance(1, status=self._status())
        if not self.in_situ and p.synapse != "fp":
            self.ex_situ_transfer(p.epochs + 1)

    def _status(self) -> str:
        st = self.state
        if not st.history:
            return ""
        return f"train {st.history[-1]:.2f} % test {st.last_test:.2f} % ({st.phase})"

    def initial_weights(self) -> list[np.ndarray]:
        """Weights uniform in ``+-init_scale / sqrt(fan-in)`` per layer (stream ``[seed, 1]``)."""
        rng = np.random.default_rng([self.seed, 1])
        out = []
        for layer in range(1, self.p.n_layers + 1):
            fan_in = layer_rows(self.p, layer)
            a = self.p.init_scale / math.sqrt(fan_in)
            out.append(rng.uniform(-a, a, size=(fan_in, self.p.sizes[layer])))
        return out

    def start(self) -> None:
        """Epoch 0: calibrate the arrays and program the initial weights (or set the float
        weights), and commit the initial state."""
        p = self.p
        weights = self.initial_weights()
        record = EpochRecord(epoch={})
        if p.synapse != "fp" and self.in_situ:
            self.arrays = ArrayNetwork(self.ctx, p, np.random.default_rng([self.seed, 3]))
            snaps = self.arrays.calibrate()
            save_snapshots(self.ctx.store, self.ctx.run_id, -1, snaps)
            self.ctx.log_event(
                "calibrated",
                alpha={lay.index: lay.alpha for lay in self.arrays.layers},
                step_S={lay.names[k]: lay.step[k] for lay in self.arrays.layers for k in lay.names},
            )
            self.arrays.init_weights(weights)
        else:
            self.fnet = FloatNetwork(weights)
        self.commit(0, "init", record, wall_s=0.0, counters=EpochCounters())

    def resume(self, checkpoint: dict[str, Any]) -> int:
        """Restore the state and the network of the last committed epoch; returns that epoch."""
        p = self.p
        epoch, self.state = RunState.from_checkpoint(checkpoint)
        if p.synapse != "fp" and self.in_situ:
            self.arrays = restore_arrays(self.ctx, p, self.seed, epoch)
        else:
            self.fnet = restore_float(self.ctx, p, epoch)
        self.ctx.log_event("restored", epoch=epoch, phase=self.state.phase)
        return epoch

    def ex_situ_transfer(self, epoch: int) -> None:
        """Program the float network onto the arrays and commit it as epoch ``epoch`` (``ex-situ``)."""
        assert self.fnet is not None
        t0 = time.perf_counter()
        self.arrays = ex_situ.transfer(self.ctx, self.p, self.seed, self.fnet)
        self.state.phase = "ex-situ"
        self.commit(
            epoch, "ex-situ", EpochRecord(epoch={}), wall_s=time.perf_counter() - t0, counters=EpochCounters()
        )

    # ------------------------------------------------------------------ helpers
    def _with_bias(self, x: np.ndarray) -> np.ndarray:
        if not self.p.bias:
            return x
        if x.ndim == 1:
            out = np.empty(x.size + 1)
            out[:-1] = x
            out[-1] = 1.0
            return out
        return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)

    def _output_delta(self, z: np.ndarray, out: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Error at the output: ``y - t`` (cross entropy of sigmoid outputs) or ``(y - t) f'(z)`` (MSE)."""
        if self.p.loss == "cross_entropy":
            return out - target
        return (out - target) * self.act.df(z, out)

    def evaluate(self, images: np.ndarray, labels: np.ndarray, on_arrays: bool) -> tuple[float, float]:
        """Accuracy (%) and MSE of the network on a data set, batched."""
        correct = 0
        sq = 0.0
        for start in range(0, len(labels), self.p.eval_batch):
            x = images[start : start + self.p.eval_batch].astype(float)
            for idx in range(self.p.n_layers):
                xb = self._with_bias(x)
                if on_arrays:
                    assert self.arrays is not None
                    z = self.arrays.layer_forward(self.arrays.layers[idx], xb)
                else:
                    assert self.fnet is not None
                    z = self.fnet.batch_sums(idx, xb)
                x = self.act.f(z)
            lab = labels[start : start + self.p.eval_batch]
            correct += int(np.sum(np.argmax(x, axis=1) == lab))
            t = np.eye(N_CLASSES)[lab]
            sq += float(np.sum((x - t) ** 2))
        n = max(len(labels), 1)
        return 100.0 * correct / n, sq / (n * N_CLASSES)

    def _forward(
        self, image: np.ndarray, weighted_sums: WeightedSums
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """One image through every layer: each layer's inputs (bias appended), weighted sums
        (``weighted_sums(layer index, inputs)``) and activations."""
        xs = [self._with_bias(image.astype(float))]
        zs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        last = self.p.n_layers - 1
        for idx in range(last + 1):
            z = weighted_sums(idx, xs[-1])
            y = self.act.f(z)
            zs.append(z)
            ys.append(y)
            if idx < last:
                xs.append(self._with_bias(y))
        return xs, zs, ys

    # ------------------------------------------------------------------ one epoch
    def epoch(self, epoch: int) -> None:
        """Train one epoch (sample order: stream ``[seed, 2, epoch]``) and commit it."""
        t0 = time.perf_counter()
        counters = EpochCounters()
        order = np.random.default_rng([self.seed, 2, epoch]).permutation(self.n_train)
        if self.arrays is not None:
            self.arrays.reset_stats()
            self.train_arrays(epoch, order, counters)
        else:
            self.train_float(epoch, order, counters)
        phase = self.state.phase
        record = EpochRecord(epoch={})
        self.commit(epoch, phase, record, wall_s=time.perf_counter() - t0, counters=counters)

    def train_float(self, epoch: int, order: np.ndarray, counters: EpochCounters) -> None:
        """One epoch of exact SGD on the float network."""
        fnet = self.fnet
        assert fnet is not None
        images, targets, labels = self.data.train_images, self.targets, self.data.train_labels
        for s, n in enumerate(order):
            xs, zs, ys = self._forward(images[n], fnet.weighted_sums)
            out = ys[-1]
            counters.correct += int(np.argmax(out) == labels[n])
            delta = self._output_delta(zs[-1], out, targets[n])
            fnet.backpropagate(xs, zs, ys, delta, self.act, self.p.lr)
            if self.tracked.size and s % self.p.track_interval == 0:
                counters.track_rows.extend(tracked_float(fnet, self.tracked, s))
        counters.samples = len(order)

    def train_arrays(self, epoch: int, order: np.ndarray, counters: EpochCounters) -> None:
        """One epoch on the arrays: VMM passes, pulse updates, measured updates, occasional reset."""
        net = self.arrays
        assert net is not None
        p = self.p
        act, phase = self.act, self.state.phase
        images, targets, labels = self.data.train_images, self.targets, self.data.train_labels
        layers = net.layers
        # inputs of layer 1 are pixels in [0, 1]; of the others, the activation's outputs
        nonneg = [True] + [bool(act.nonnegative)] * (len(layers) - 1)
        longest = net.check_intervals()
        # adaptive occasional reset: a layer is checked more often while many of its pairs
        # need a reset (down to 1/16 of the longest interval, at least 4 samples), less often
        # when few do
        every = list(self.check_every) if self.check_every else list(longest)
        next_check = list(every)
        n_layers = len(layers)
        last = n_layers - 1

        def weighted_sums(idx: int, x: np.ndarray) -> np.ndarray:
            return net.layer_forward(layers[idx], x)

        for s, n in enumerate(order):
            xs, zs, ys = self._forward(images[n], weighted_sums)
            out = ys[-1]
            counters.correct += int(np.argmax(out) == labels[n])
            deltas: list[np.ndarray] = [np.zeros(0)] * n_layers
            delta = self._output_delta(zs[-1], out, targets[n])
            deltas[last] = delta
            for idx in range(last, 0, -1):
                delta = net.layer_backward(layers[idx], delta) * act.df(zs[idx - 1], ys[idx - 1])
                deltas[idx - 1] = delta
            measure = s % p.werror_interval == 0
            for idx in range(n_layers):
                if idx == last and measure:
                    self._update_measured(layers[idx], xs[idx], deltas[idx], phase, epoch, s, counters)
                else:
                    net.update(layers[idx], xs[idx], deltas[idx], phase, epoch, s, nonneg[idx])
            for li in range(n_layers):
                if s + 1 >= next_check[li]:
                    counters.resets += net.check_saturation(phase, epoch, s, [layers[li]], incremental=True)
                    frac = layers[li].last_reset_fraction
                    if frac > 0.01:
                        every[li] = max(max(4, longest[li] // 16), every[li] // 2)
                    elif frac < 0.002:
                        every[li] = min(longest[li], every[li] * 2)
                    next_check[li] = s + 1 + every[li]
            if self.tracked.size and s % p.track_interval == 0:
                counters.track_rows.extend(tracked_arrays(net, self.tracked, s))
        counters.resets += net.check_saturation(phase, epoch, len(order))
        counters.samples = len(order)
        self.check_every = every

    def _update_measured(self, lay: Layer, x: np.ndarray, delta: np.ndarray, phase: str, epoch: int, s: int,
                         counters: EpochCounters) -> None:  # fmt: skip
        """Update the last layer and measure ``|W_target - W|`` with reads before and after it."""
        net = self.arrays
        assert net is not None
        plus, minus = active_pair(phase)
        before = net.read(lay.names[plus]) - net.read(lay.names[minus])
        net.update(lay, x, delta, phase, epoch, s)
        after = net.read(lay.names[plus]) - net.read(lay.names[minus])
        # the weight change the pulses aim at: dW, times g's gain under fine_counts=same
        gain = lay.step[plus] / net.count_step(lay, plus)
        target = -self.p.lr * gain * np.multiply.outer(x, delta)
        err = np.abs(target - lay.alpha * (after - before))
        counters.werr_sum = err if counters.werr_sum is None else counters.werr_sum + err
        counters.werr_n += 1

    # ------------------------------------------------------------------ commit
    def commit(
        self, epoch: int, phase: str, record: EpochRecord, wall_s: float, counters: EpochCounters
    ) -> None:
        """Evaluate, decide the next phase, and commit the epoch with its arrays' figures,
        snapshots, tracked weights, weight-error histogram and the checkpoint (one transaction)."""
        p, st = self.p, self.state
        on_arrays = self.arrays is not None
        train_acc, mse = self.evaluate(self.data.train_images, self.data.train_labels, on_arrays)
        test_acc, _ = self.evaluate(self.data.test_images, self.data.test_labels, on_arrays)
        st.last_test = test_acc
        st.history.append(train_acc)
        decision = next_phase(
            epoch,
            st.phase,
            st.history,
            st.dynamic_epochs,
            p,
            two_phases=p.synapse == "hybrid" and self.in_situ,
        )
        st.dynamic_epochs = decision.dynamic_epochs
        if decision.switched:
            st.phase = decision.phase
            st.switch_epoch = epoch + 1
            self.ctx.log_event(
                "phase-switch", after_epoch=epoch, gain_pp=decision.gain_pp, forced=decision.forced
            )
        st.total_resets += counters.resets
        row: dict[str, Any] = {
            "epoch": epoch, "phase": phase, "train_accuracy": train_acc, "test_accuracy": test_acc, "mse": mse,
            "online_accuracy": 100.0 * counters.correct / counters.samples if counters.samples else None,
            "samples": counters.samples, "resets": counters.resets, "switched": decision.switched, "wall_s": wall_s,
        }  # fmt: skip
        if self.arrays is not None:
            net = self.arrays
            record.arrays, record.snapshots, totals = array_figures(net, counters.samples)
            row.update(totals)
            if counters.werr_sum is not None and counters.werr_n:
                row["weight_error_mean"], record.weight_errors = weight_error_rows(
                    net.layers[-1].index, counters.werr_sum, counters.werr_n
                )
        else:
            row["pulses"] = 0
        record.epoch = row
        record.tracked = [{**r} for r in counters.track_rows]
        if epoch == 0 and self.tracked.size:
            if self.arrays is not None:
                record.tracked = tracked_arrays(self.arrays, self.tracked, 0)
            elif self.fnet is not None:
                record.tracked = tracked_float(self.fnet, self.tracked, 0)
            else:
                record.tracked = []
        record.checkpoint = st.checkpoint(epoch)
        if self.fnet is not None and self.arrays is None:
            # the float network's state is its weights: keep them with the epoch for resume
            record.snapshots = {(float_snapshot_name(i + 1), "weights"): w for i, w in enumerate(self.fnet.w)}
        commit_epoch(self.ctx.store, self.ctx.run_id, record)
