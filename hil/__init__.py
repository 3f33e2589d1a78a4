"""rram-hil core: the backend interface, station config, safety limits, the store and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rram-hil")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
