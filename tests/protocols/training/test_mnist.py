"""MNIST from IDX files: loading, clear errors naming the file, and fetching from a local mirror."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hil.cli import app
from protocols.training.mnist import (
    ENV_VAR,
    MNIST_FILES,
    DataError,
    fetch_mnist,
    load_mnist,
    parse_idx,
    repository_root,
    resolve_mnist_dir,
    write_idx,
)
from tests.helpers import synthetic_digits, write_tiny_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_load_round_trip(tmp_path: Path, gz: bool) -> None:
    write_tiny_mnist(tmp_path, 30, 10, gz=gz)
    data = load_mnist(tmp_path)
    images, labels = synthetic_digits(30, 1)
    assert data.train_images.shape == (30, 784) and data.train_images.dtype == np.float32
    np.testing.assert_allclose(data.train_images, images.reshape(30, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.train_labels, labels)
    assert data.test_images.shape == (10, 784)
    assert data.train_images.min() >= 0.0 and data.train_images.max() <= 1.0


def test_environment_variable_and_mnist_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_mnist(tmp_path / "mnist", 20, 10)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve_mnist_dir() == tmp_path / "mnist"
    assert len(load_mnist().train_labels) == 20


def test_missing_file_names_it_and_where_to_put_it(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path, 20, 10)
    (tmp_path / (MNIST_FILES["test_labels"] + ".gz")).unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as exc:
        load_mnist(tmp_path)
    assert str(tmp_path) in str(exc.value) and "rram-hil data fetch mnist" in str(exc.value)


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path, 20, 10)
    bad = tmp_path / (MNIST_FILES["train_images"] + ".gz")
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is a corrupt gzip file"):
        load_mnist(tmp_path)


def test_truncated_and_bad_magic_are_explained(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path, 20, 10, gz=False)
    path = tmp_path / MNIST_FILES["train_images"]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="bad magic number"):
        parse_idx(b"\x01\x02\x08\x01", "x")


def test_label_count_must_match_images(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path, 20, 10)
    write_idx(tmp_path / (MNIST_FILES["train_labels"] + ".gz"), np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="19 labels for 20 train images"):
        load_mnist(tmp_path)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP mirror (127.0.0.1) serving tiny gzipped MNIST files."""
    served = write_tiny_mnist(tmp_path / "served", 20, 10)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fetch_from_a_local_mirror(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, served = mirror
    files = fetch_mnist(tmp_path / "got", url, verify_md5=False)
    assert sorted(f.name for f in files) == sorted(f + ".gz" for f in MNIST_FILES.values())
    for f in files:
        assert f.read_bytes() == (served / f.name).read_bytes()
    assert len(load_mnist(tmp_path / "got").train_labels) == 20


def test_fetch_checks_md5_and_leaves_nothing_behind(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mirror
    with pytest.raises(DataError, match="md5 of the contents is"):
        fetch_mnist(tmp_path / "got", url, verify_md5=True)
    assert not any((tmp_path / "got").iterdir())


def test_fetch_reports_an_unreachable_file(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mirror
    with pytest.raises(DataError, match="cannot download .*nowhere/train-images-idx3-ubyte.gz"):
        fetch_mnist(tmp_path / "got", url + "nowhere/", verify_md5=False)


def test_cli_fetch(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mirror
    result = CliRunner().invoke(
        app, ["data", "fetch", "mnist", "--dir", str(tmp_path / "cli"), "--url", url, "--no-verify"]
    )
    assert result.exit_code == 0, result.output
    assert (
        gzip.decompress((tmp_path / "cli" / "t10k-labels-idx1-ubyte.gz").read_bytes())[:4]
        == b"\x00\x00\x08\x01"
    )
    bad = CliRunner().invoke(app, ["data", "fetch", "mnist", "--dir", str(tmp_path / "x"), "--url", url])
    assert bad.exit_code == 2 and "md5" in bad.output


def test_repository_root_holds_the_hil_package() -> None:
    """The default data directory is ``../shared/data/mnist`` relative to the repository root."""
    assert (repository_root() / "hil").is_dir()
