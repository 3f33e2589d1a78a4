"""Backends: the registry of backend kinds (:mod:`~hil.backends.registry`) and the hardware ones.

- ``smu-matrix``: source-measure units routed to the arrays by a switch matrix
  (:mod:`~hil.backends.smu_matrix`, station schema in :mod:`~hil.backends.smu_matrix_config`);
- ``board``: an FPGA crossbar board over serial (:mod:`~hil.backends.board`);
- ``twin``: the simulated twin, registered by :mod:`sim_backend` (this package does not import it).

Every backend is opened behind the safety layer (:func:`open_backend`).
"""

from hil.backends.registry import (
    BackendFactory,
    BackendKind,
    backend_kind,
    backend_kinds,
    build_backend,
    open_backend,
)

__all__ = ["BackendFactory", "BackendKind", "backend_kind", "backend_kinds", "build_backend", "open_backend"]
