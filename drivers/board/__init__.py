"""The FPGA crossbar board: its serial wire format (:mod:`~drivers.board.messages`) and the
client that talks it (:mod:`~drivers.board.client`)."""
