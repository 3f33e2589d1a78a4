"""The FPGA crossbar board: its serial wire format, byte framing (:mod:`~drivers.board.framing`)
and messages (:mod:`~drivers.board.messages`), and the client that talks it
(:mod:`~drivers.board.client`), which splits large transfers into frames."""
