"""Instrument drivers (pymeasure Instrument classes) and the FPGA board client with its serial wire format.

Drivers know nothing of protocols, the store or the twin."""
