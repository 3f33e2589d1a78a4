"""A Ctrl-C or SIGTERM that lands inside a store write's commit (not only between writes): the
run is still marked ``interrupted`` with its safe-state event, every reading committed before it
is kept, nothing half-written stays, and no SQLAlchemy traceback comes out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event

from hil.engine import RunEngine
from hil.station import load_station
from hil.store import Store


def test_an_interrupt_inside_a_commit_still_ends_the_run_interrupted(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        commits = [0]

        @event.listens_for(store.engine, "commit")
        def interrupted_on_the_tenth_commit(conn: Any) -> None:
            commits[0] += 1
            if commits[0] == 10:
                raise KeyboardInterrupt  # as the SIGTERM handler raises, mid-commit

        params = {"cycles": 50, "pulses": 5, "cells": "0,0"}
        out = RunEngine(store).run("potentiation-cycling", load_station(None), params, plot=False)
        assert commits[0] > 10  # the run's end was recorded after the interrupted commit
        assert out.status == "interrupted" and store.run(out.run_id).status == "interrupted"
        assert list(store.events_df(out.run_id)["kind"])[-1] == "safe-state"
        df = store.readings_df(out.run_id)
        assert 0 < len(df) < 50 * 5 and len(df) % 5 == 0  # whole pulse trains only
        seq = df["seq"].to_numpy()
        assert np.array_equal(seq, np.arange(seq[0], seq[0] + len(seq)))
