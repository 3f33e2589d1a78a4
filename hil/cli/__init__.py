"""The ``rram-hil`` command line: the top layer, the only one that imports every other.

:mod:`hil.cli.app` builds the application from the command modules (:mod:`~hil.cli.runs`,
:mod:`~hil.cli.analysis`, :mod:`~hil.cli.emulate`, :mod:`~hil.cli.training`), which share
:mod:`~hil.cli.common`.
"""

from hil.cli.app import app, main

__all__ = ["app", "main"]
