"""The characterisation protocols run unchanged on another backend: the FPGA board (emulated on
the same twin devices over a pseudo-terminal) gives the extraction the direct twin gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil.engine import RunEngine
from hil.store import Store
from protocols.analysis.extract import analyze
from tests.helpers import BOARD_ARRAYS, emulated_board, twin_station

PROGRAM = """
array: P
cells: "0:2,0:2"
steps:
  - loop: {count: 2, steps: [{pulse: {amplitude_V: 2.0, width_s: 1.0e-4, count: 5, read_after: true}}]}
  - delay: {seconds: 10}
  - read: {label: after}
"""

CASES: dict[str, dict[str, Any]] = {
    "pulse-response": {"arrays": "P", "cells": "0:2,0:2", "cycles": 1, "pulses": 60},
    "area-scaling": {"arrays": "P,N30", "cells": "0,0;1,1", "cycles": 1, "pulses": 60},
    "retention": {"array": "P", "cells": "0:2,0:2", "points": 6, "t_last_s": 1e8},
    "write-verify": {"array": "P", "cells": "0:2,0:2", "target_S": 10e-6, "target_max_S": 40e-6},
    "threshold-search": {"array": "P", "cells": "0:2,0:2"},
    "read-disturb": {
        "array": "P",
        "cells": "0:2,0:2",
        "stress_reads": 100,
        "blocks": 3,
        "stress_voltage_V": 1.0,
    },
    "endurance": {"array": "P", "cells": "0:2,0:2", "cycles": 5},
    "dc-iv": {"array": "P", "cells": "0,0", "cycles": 1, "v_step_V": 0.1},
    "sequence": {},
}


@pytest.mark.parametrize("protocol", sorted(CASES))
def test_board_and_twin_extract_the_same(protocol: str, tmp_path: Path) -> None:
    params = dict(CASES[protocol])
    if protocol == "sequence":
        path = tmp_path / "program.yaml"
        path.write_text(PROGRAM)
        params["program"] = str(path)
    summaries = []
    for backend in ("twin", "board"):
        store = Store(tmp_path / f"{backend}.sqlite")
        if backend == "board":
            with emulated_board() as (station, _):
                outcome = RunEngine(store).run(protocol, station, params, plot=False)
        else:
            outcome = RunEngine(store).run(protocol, twin_station(arrays=BOARD_ARRAYS), params, plot=False)
        assert outcome.status == "completed", (backend, outcome.error)
        summaries.append(analyze(store, outcome.run_id).summary)
        store.close()
    twin, board = summaries
    numbers = {k: v for k, v in twin.items() if isinstance(v, float)}
    assert numbers, "the extraction produced no numbers"
    for key, value in numbers.items():
        # the board's wire format carries float32 readings: agreement to its precision
        assert board[key] == pytest.approx(value, rel=1e-5, abs=1e-12), key
