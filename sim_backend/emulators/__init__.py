"""Wire-level emulators of the station's instruments, backed by the shared twin.

Every emulator follows one contract: its constructor takes the shared
:class:`~sim_backend.twin.TwinBackend` (and its options), ``start() -> str`` returns the resource
a driver opens, ``stop()`` ends it, it is a context manager, and it exposes its state (outputs
on/off, counters) for tests to assert on.

Modules: ``scpi_server`` (the TCP server: latency, faults, counters), ``scpi`` and ``tsp`` (the
SCPI and TSP command languages), ``wiring`` (the bench: cabling, relays, physics to the twin),
``smu_channel`` (one SMU channel's state), ``models`` (the table of emulated models), the instruments ``keithley2450``, ``keithley2600``,
``b2900``, ``keithley707b``, ``e5250a``, the FPGA ``board``, and ``launcher`` (a station's set).
"""
