"""Data sets for training protocols: MNIST from its four IDX files, and fetching them.

The IDX format (LeCun et al.): a 4-byte magic number ``0x00 0x00 TYPE NDIM`` (``TYPE`` 0x08
is unsigned byte), ``NDIM`` big-endian 32-bit sizes, then the data in row-major order. Files
may be gzipped (detected by their first two bytes, whatever their name).

Where the files are: the ``data_dir`` a caller gives, else the environment variable
``RRAM_HIL_DATA``, else ``../shared/data/mnist`` relative to the repository root. A directory
that holds an ``mnist/`` folder with the files also works. The project never commits the files;
``rram-hil data fetch mnist`` downloads them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.errors import ConfigError

ENV_VAR = "RRAM_HIL_DATA"

#: The four files by role, without the ``.gz`` suffix.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: md5 of the uncompressed contents of the original distribution.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
#: A public mirror of the original files (the original site often refuses scripted downloads).
DEFAULT_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

_UBYTE = 0x08

#: Side of an MNIST image (pixels) and the number of classes (the digits 0-9).
IMAGE_SIDE = 28
N_CLASSES = 10


class DataError(ConfigError):
    """A data file that is missing or not what it should be; the message says where to put it."""


@dataclass(frozen=True)
class Mnist:
    """MNIST as arrays: images ``(n, 784)`` float32 in [0, 1] (pixel / 255), labels ``(n,)`` int64."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    directory: Path


def repository_root() -> Path:
    """The directory holding the ``hil`` package (the repository root of a source checkout):
    two levels above this module's package, ``protocols/training``."""
    return Path(__file__).resolve().parents[2]


def default_data_dirs() -> list[Path]:
    """Where MNIST is looked for when no ``data_dir`` is given, in order."""
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(repository_root().parent / "shared" / "data" / "mnist")
    return dirs


def _hint(directory: Path) -> str:
    return (
        f"put the four MNIST IDX files ({', '.join(f + '[.gz]' for f in MNIST_FILES.values())}) in "
        f"{directory}, or set data_dir / {ENV_VAR}, or run `rram-hil data fetch mnist --dir {directory}`"
    )


def _candidates(directory: Path, stem: str) -> list[Path]:
    dotted = stem.replace("-idx", ".idx")  # some distributions name them train-images.idx3-ubyte
    return [directory / f"{s}{ext}" for s in (stem, dotted) for ext in (".gz", "")]


def find_file(directory: Path, stem: str) -> Path | None:
    """The file ``stem`` or ``stem.gz`` in ``directory``, if there is one."""
    for cand in _candidates(directory, stem):
        if cand.is_file():
            return cand
    return None


def resolve_mnist_dir(data_dir: str | Path | None = None) -> Path:
    """The directory holding the four MNIST files.

    Raises:
        DataError: none found; the message names the missing files and where to put them.
    """
    dirs = [Path(data_dir).expanduser()] if data_dir else default_data_dirs()
    for d in dirs:
        for base in (d, d / "mnist"):
            if all(find_file(base, stem) is not None for stem in MNIST_FILES.values()):
                return base
    first = dirs[0]
    missing = [stem for stem in MNIST_FILES.values() if find_file(first, stem) is None]
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(
        f"data_dir: MNIST file(s) {', '.join(missing)} not found (looked in {looked}); {_hint(first)}"
    )


def read_bytes(path: Path) -> bytes:
    """The contents of ``path``, gunzipped if it is gzip (by its magic bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"data_dir: cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(
                f"data_dir: {path} is a corrupt gzip file ({exc}); delete it and {_hint(path.parent)}"
            ) from None
    return raw


def parse_idx(data: bytes, source: str = "idx") -> np.ndarray:
    """An unsigned-byte IDX file's contents as a uint8 array of its declared shape.

    Raises:
        DataError: bad magic number, unsupported type, or a size that does not match.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dtype, ndim = data[2], data[3]
    if dtype != _UBYTE:
        raise DataError(f"{source}: IDX data type 0x{dtype:02x} is not unsigned byte (0x08)")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{source}: truncated IDX header ({len(data)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(data) - header
    if body != expected:
        raise DataError(
            f"{source}: IDX header declares shape {tuple(shape)} ({expected} bytes) but the file holds "
            f"{body} bytes of data (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzipped when ``compress`` or the name ends in ``.gz``)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, _UBYTE, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    gz = path.suffix == ".gz" if compress is None else compress
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def load_mnist(data_dir: str | Path | None = None) -> Mnist:
    """Load the four MNIST files and check that they fit together.

    Raises:
        DataError: a file is missing, corrupt or inconsistent; the message names it.
    """
    directory = resolve_mnist_dir(data_dir)
    parts: dict[str, np.ndarray] = {}
    for role, stem in MNIST_FILES.items():
        path = find_file(directory, stem)
        assert path is not None
        arr = parse_idx(read_bytes(path), str(path))
        want = 3 if "images" in role else 1
        if arr.ndim != want:
            raise DataError(f"{path}: expected a {want}-D IDX file for {role}, got shape {arr.shape}")
        if "images" in role and arr.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(f"{path}: MNIST images must be 28 x 28, got {arr.shape[1]} x {arr.shape[2]}")
        if "labels" in role and arr.size and arr.max() > 9:
            raise DataError(f"{path}: labels must be digits 0-9, found {int(arr.max())}")
        parts[role] = arr
    for split in ("train", "test"):
        n_img, n_lab = len(parts[f"{split}_images"]), len(parts[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(
                f"{find_file(directory, MNIST_FILES[f'{split}_labels'])}: {n_lab} labels for {n_img} "
                f"{split} images"
            )
    scale = np.float32(1.0 / 255.0)
    return Mnist(
        train_images=parts["train_images"].reshape(len(parts["train_images"]), -1).astype(np.float32) * scale,
        train_labels=parts["train_labels"].astype(np.int64),
        test_images=parts["test_images"].reshape(len(parts["test_images"]), -1).astype(np.float32) * scale,
        test_labels=parts["test_labels"].astype(np.int64),
        directory=directory,
    )


def pool_images(images: np.ndarray, block: int) -> np.ndarray:
    """``(n, 784)`` images average-pooled in ``block x block`` squares: ``(n, (28 / block)^2)``."""
    if block == 1:
        return images
    side = IMAGE_SIDE // block
    return images.reshape(len(images), side, block, side, block).mean(axis=(2, 4)).reshape(len(images), -1)


def fetch_mnist(
    directory: str | Path, base_url: str = DEFAULT_MNIST_URL, verify_md5: bool = True, timeout_s: float = 60.0
) -> list[Path]:
    """Download the four gzipped MNIST files from ``base_url`` into ``directory``.

    A file already there and valid is kept. Every download is checked (gzip, IDX header, and
    with ``verify_md5`` the md5 of the original distribution) before it is moved into place, so
    a failed or corrupt download never leaves a bad file behind.

    Raises:
        DataError: a download failed or the file is not the expected one.
    """
    target = Path(directory).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    written: list[Path] = []
    for stem in MNIST_FILES.values():
        dest = target / f"{stem}.gz"
        if dest.exists():
            try:
                _check_file(dest, stem, verify_md5)
                written.append(dest)
                continue
            except DataError:
                pass  # replace a bad file
        url = base + f"{stem}.gz"
        with tempfile.NamedTemporaryFile(dir=target, prefix=f".{stem}.", suffix=".part", delete=False) as tmp:
            tmp_path = Path(tmp.name)
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    shutil.copyfileobj(response, tmp)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                tmp.close()
                tmp_path.unlink(missing_ok=True)
                reason = getattr(exc, "reason", exc)
                raise DataError(f"fetch: cannot download {url}: {reason}") from None
        try:
            _check_file(tmp_path, stem, verify_md5, shown=url)
        except DataError:
            tmp_path.unlink(missing_ok=True)
            raise
        tmp_path.replace(dest)
        written.append(dest)
    return written


def _check_file(path: Path, stem: str, verify_md5: bool, shown: str | None = None) -> None:
    name = shown or str(path)
    data = read_bytes(path)
    parse_idx(data, name)
    if verify_md5:
        digest = hashlib.md5(data).hexdigest()
        if digest != MNIST_MD5[stem]:
            raise DataError(
                f"{name}: md5 of the contents is {digest}, expected {MNIST_MD5[stem]} (not the original "
                f"{stem})"
            )
