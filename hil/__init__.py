"""rram-hil core: data types and the backend interface, station config, safety limits, the protocol
base, the run engine, the backend registry and the store (the bottom layer); `hil.backends` holds the
hardware backends and `hil.cli` the command line (the top layer)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rram-hil")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
