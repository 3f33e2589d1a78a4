"""The simulated twin: device and array physics, the direct twin backend, instrument emulators."""
