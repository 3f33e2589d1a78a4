"""``python -m hil.cli``: the ``rram-hil`` command line."""

from hil.cli.app import main

main()
