"""One epoch of hybrid 784-250-10 training on the twin against one epoch of plain numpy FP.

Both run in this process on the same data (MNIST from $RRAM_HIL_DATA or --data-dir), batch 1,
learning rate 0.1, sigmoid, the same loss. Two FP baselines: textbook numpy (dense forward,
dense outer-product update) and the sparse-aware numpy a careful user writes (the forward pass
and the first layer's update touch only the rows of the image's nonzero pixels and the bias,
about 19 % of MNIST's pixels). The hybrid epoch is the ``hybrid-training`` protocol through the
engine, the safety layer and the twin (calibration and evaluation excluded: the protocol's own
per-epoch wall time is used). Each baseline runs before and after the hybrid epoch, against
drifting machine load. Prints both ratios; the last line is the one against the sparse
baseline: ``hybrid_epoch_over_sparse_fp_epoch: RATIO x``.

``--pulse-mapping`` names the update's pulse mapping (``round``, ``stochastic``,
``coincidence``), or several, comma-separated, to time each in the same run between the same
baselines (us/image and ratio per mapping; the last line is the first mapping's).
``--fine-pulse-mapping`` sets fine tuning's own (default: the protocol's, ``stochastic``).

    python benchmarks/bench_training_epoch.py [--train-limit N] [--phase dynamic|fine]
        [--pulse-mapping round,stochastic,coincidence] [--bit-length 10] [--fine-pulse-mapping same]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def fp_epoch(images: np.ndarray, labels: np.ndarray, seed: int = 0, loss: str = "cross_entropy") -> float:
    """Seconds for one epoch of plain numpy 784-250-10 SGD (sigmoid, batch 1, lr 0.1)."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, (785, 250)) / np.sqrt(785)
    w2 = rng.uniform(-1, 1, (251, 10)) / np.sqrt(251)
    targets = np.eye(10)[labels]
    order = rng.permutation(len(labels))
    t0 = time.perf_counter()
    for n in order:
        x = np.append(images[n], 1.0)
        h = 1.0 / (1.0 + np.exp(-(x @ w1)))
        hb = np.append(h, 1.0)
        o = 1.0 / (1.0 + np.exp(-(hb @ w2)))
        d2 = o - targets[n]
        if loss == "mse":
            d2 = d2 * o * (1 - o)
        d1 = (w2[:250] @ d2) * h * (1 - h)
        w2 -= 0.1 * np.outer(hb, d2)
        w1 -= 0.1 * np.outer(x, d1)
    return time.perf_counter() - t0


def sparse_fp_epoch(
    images: np.ndarray, labels: np.ndarray, seed: int = 0, loss: str = "cross_entropy"
) -> float:
    """Seconds for one epoch of the same SGD written sparse-aware: the forward pass and the first
    layer's update use only the rows of nonzero pixels (and the bias row). Same arithmetic as
    :func:`fp_epoch` (zero pixels contribute nothing to either)."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, (785, 250)) / np.sqrt(785)
    w2 = rng.uniform(-1, 1, (251, 10)) / np.sqrt(251)
    targets = np.eye(10)[labels]
    order = rng.permutation(len(labels))
    t0 = time.perf_counter()
    for n in order:
        img = images[n]
        nz = np.append(np.flatnonzero(img), 784)  # nonzero pixels and the bias row
        xs = np.append(img[nz[:-1]], 1.0)
        rows = w1[nz]
        h = 1.0 / (1.0 + np.exp(-(xs @ rows)))
        hb = np.append(h, 1.0)
        o = 1.0 / (1.0 + np.exp(-(hb @ w2)))
        d2 = o - targets[n]
        if loss == "mse":
            d2 = d2 * o * (1 - o)
        d1 = (w2[:250] @ d2) * h * (1 - h)
        w2 -= 0.1 * np.outer(hb, d2)
        rows -= 0.1 * np.outer(xs, d1)
        w1[nz] = rows
    return time.perf_counter() - t0


def hybrid_epoch(
    data_dir: str | None,
    train_limit: int | None,
    phase: str,
    pulse_mapping: str = "round",
    bit_length: int = 10,
    fine_pulse_mapping: str | None = None,
) -> tuple[float, dict]:
    """Seconds of one training epoch of the hybrid protocol (dynamic or fine tuning)."""
    from hil.engine import RunEngine
    from hil.station import load_station
    from hil.store import Store
    from hil.store.training import epochs_df

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite")
        params: dict = {"synapse": "hybrid", "epochs": 1 if phase == "dynamic" else 2, "test_limit": 1000}
        params["pulse_mapping"] = pulse_mapping
        if fine_pulse_mapping is not None:
            params["fine_pulse_mapping"] = fine_pulse_mapping
        if pulse_mapping == "coincidence":
            params["bit_length"] = bit_length
        if phase == "fine":
            params["max_dynamic_epochs"] = 1
        if train_limit:
            params["train_limit"] = train_limit
        if data_dir:
            params["data_dir"] = data_dir
        outcome = RunEngine(store).run("hybrid-training", load_station(None), params, plot=False)
        assert outcome.status == "completed", outcome.error
        ep = epochs_df(store, outcome.run_id)
        row = ep.iloc[-1]
        store.close()
        return float(row["wall_s"]), row.to_dict()


def row_fine(fine_pulse_mapping: str | None) -> str:
    """Fine tuning's mapping as the run used it (the protocol's default when not given)."""
    if fine_pulse_mapping is not None:
        return fine_pulse_mapping
    from protocols.training import HybridTrainingParams

    return str(HybridTrainingParams().fine_pulse_mapping)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train-limit", type=int, default=None, help="images per epoch (default: all 60,000)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--phase", choices=["dynamic", "fine"], default="dynamic")
    parser.add_argument("--pulse-mapping", default="round", help="a mapping, or several comma-separated")
    parser.add_argument("--bit-length", type=int, default=10, help="slots per update (coincidence)")
    parser.add_argument(
        "--fine-pulse-mapping", default=None, help="fine tuning's own mapping (default: the protocol's)"
    )
    args = parser.parse_args()
    mappings = [m.strip() for m in args.pulse_mapping.split(",") if m.strip()]
    from protocols.training.mnist import load_mnist

    data = load_mnist(args.data_dir)
    n = args.train_limit or len(data.train_labels)
    images, labels = data.train_images[:n].astype(np.float64), data.train_labels[:n]
    t_fp = fp_epoch(images, labels)
    t_sp = sparse_fp_epoch(images, labels)
    data_dir = args.data_dir or os.environ.get("RRAM_HIL_DATA")
    runs = {
        m: hybrid_epoch(data_dir, args.train_limit, args.phase, m, args.bit_length, args.fine_pulse_mapping)
        for m in mappings
    }
    t_fp2 = fp_epoch(images, labels, seed=1)  # again after, against drifting machine load
    t_sp2 = sparse_fp_epoch(images, labels, seed=1)
    fp = 0.5 * (t_fp + t_fp2)
    sp = 0.5 * (t_sp + t_sp2)
    nonzero = float(np.count_nonzero(images)) / images.size
    print(f"images per epoch: {n} ({100 * nonzero:.1f} % of pixels nonzero)")
    print(f"plain numpy FP epoch (dense): {t_fp:.2f} s and {t_fp2:.2f} s ({1e6 * fp / n:.0f} us/image)")
    print(f"plain numpy FP epoch (sparse-aware): {t_sp:.2f} s and {t_sp2:.2f} s ({1e6 * sp / n:.0f} us/image)")
    for m, (t_m, row) in runs.items():
        bits = f", bit_length {args.bit_length}" if m == "coincidence" else ""
        if args.phase == "fine":
            bits += f", fine_pulse_mapping={row_fine(args.fine_pulse_mapping)}"
        print(
            f"hybrid {args.phase} epoch on the twin, pulse_mapping={m}{bits}: {t_m:.2f} s "
            f"({1e6 * t_m / n:.0f} us/image); {int(row['pulses'])} pulses, {int(row['resets'])} resets, "
            f"train acc {row['train_accuracy']:.2f} %"
        )
        if len(runs) > 1:
            print(f"hybrid_{m}_epoch_over_sparse_fp_epoch: {t_m / sp:.2f} x")
    t_hy = runs[mappings[0]][0]
    print(f"hybrid_epoch_over_fp_epoch: {t_hy / fp:.2f} x")
    print(f"hybrid_epoch_over_sparse_fp_epoch: {t_hy / sp:.2f} x")


if __name__ == "__main__":
    main()
