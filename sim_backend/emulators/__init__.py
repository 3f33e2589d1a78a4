"""Wire-level emulators of the station's instruments, backed by the shared twin.

Every emulator follows one contract: its constructor takes the shared
:class:`~sim_backend.twin.TwinBackend` (and its options), ``start() -> str`` returns the resource
a driver opens, ``stop()`` ends it, it is a context manager, and it exposes its state (outputs
on/off, counters) for tests to assert on.
"""
