"""``rram-hil serve``: the lab in a browser (runs list, live plots, starting and stopping runs).

A top-layer package like :mod:`hil.cli`: nothing in the core, the protocols, the drivers or the
twin imports it (``lint-imports`` checks). :mod:`~hil.web.app` is the FastAPI application,
:mod:`~hil.web.live` what the run pages plot and push, :mod:`~hil.web.control` starting, aborting
and resuming runs (each in a :mod:`~hil.web.runner` process, through the run engine),
:mod:`~hil.web.security` the access token and cross-site checks, :mod:`~hil.web.query` the one
read it adds to the store's API. See ``docs/web.md``.
"""
