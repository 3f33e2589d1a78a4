"""Instrument drivers (pymeasure Instrument classes) and the FPGA board serial protocol.

Drivers know nothing of protocols, the store or the twin."""
