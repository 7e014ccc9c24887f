"""Datasets by name: fetched from a local HTTP server serving archives in the exact upstream layout.

The server on 127.0.0.1 stands in for the authors' sites (no internet in CI). The archives are
synthesized: tiny, but the same files, folders, pickles and IDX headers as the published ones; the
published md5 sums are swapped for the synthesized archives' own.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nas.cli.main import main
from nas.data import SOURCES, load_dataset, parse_data_spec
from nas.data.fetch import RemoteFile, data_home, is_present
from nas.errors import DataError

RNG = np.random.default_rng(0)


# -- archives in the upstream layout ---------------------------------------------------------------
def _pickle(n: int, label_key: bytes, classes: int) -> tuple[bytes, list[int]]:
    labels = RNG.integers(0, classes, size=n).tolist()
    doc = {b"batch_label": b"training batch", label_key: labels, b"filenames": [b"x.png"] * n,
           b"data": RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)}
    if label_key == b"fine_labels":
        doc[b"coarse_labels"] = [k // 5 for k in labels]
    return pickle.dumps(doc, protocol=2), labels


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar10_archive(per_batch: int = 4) -> tuple[bytes, list[int]]:
    """``cifar-10-python.tar.gz`` as published: ``cifar-10-batches-py/`` with five batches, a test batch,
    ``batches.meta`` and ``readme.html``."""
    members, labels = {}, []
    for i in range(1, 6):
        members[f"cifar-10-batches-py/data_batch_{i}"], y = _pickle(per_batch, b"labels", 10)
        labels += y
    members["cifar-10-batches-py/test_batch"], _ = _pickle(3, b"labels", 10)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10})
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return _targz(members), labels


def cifar100_archive() -> bytes:
    members = {"cifar-100-python/train": _pickle(6, b"fine_labels", 100)[0],
               "cifar-100-python/test": _pickle(2, b"fine_labels", 100)[0],
               "cifar-100-python/meta": pickle.dumps({b"fine_label_names": [b"apple"] * 100})}
    return _targz(members)


def _idx(array: np.ndarray) -> bytes:
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def fashion_files() -> dict[str, bytes]:
    return {"train-images-idx3-ubyte.gz": _idx(RNG.integers(0, 256, size=(7, 28, 28))),
            "train-labels-idx1-ubyte.gz": _idx(np.arange(7) % 10),
            "t10k-images-idx3-ubyte.gz": _idx(RNG.integers(0, 256, size=(3, 28, 28))),
            "t10k-labels-idx1-ubyte.gz": _idx(np.arange(3))}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- the server ------------------------------------------------------------------------------------
class Mirror:
    """A folder URL on 127.0.0.1 serving ``files``; ``cut`` files stop after half their bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                if name not in mirror.files:
                    self.send_error(404)
                    return
                data = mirror.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if name in mirror.cut else data)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    server = Mirror()
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("NAS_DATA_MIRROR", server.url)
    yield server
    server.stop()


def publish(monkeypatch: pytest.MonkeyPatch, mirror: Mirror, name: str, files: dict[str, bytes],
            md5: dict[str, str] | None = None) -> None:
    """Serve ``files`` and make their md5 (or the given ones) the published sums of ``name``."""
    mirror.files.update(files)
    src = SOURCES[name]
    remote = tuple(RemoteFile(f.name, (md5 or {}).get(f.name, _md5(files[f.name]))) for f in src.files)
    monkeypatch.setitem(SOURCES, name, dataclasses.replace(src, files=remote))


def cache_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# -- tests -----------------------------------------------------------------------------------------
def test_the_published_sums_are_torchvisions() -> None:
    assert SOURCES["cifar10"].files[0] == RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
    assert SOURCES["cifar100"].files[0] == RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")
    assert SOURCES["cifar10"].url(SOURCES["cifar10"].files[0]) == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert len(SOURCES["fashion_mnist"].files) == 4


def test_a_name_alone_is_fetched_a_path_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_data_spec("cifar10").path is None and parse_data_spec("fashion_mnist").path is None
    assert parse_data_spec("cifar10:/data/c").path == Path("/data/c")
    with pytest.raises(DataError, match=r"dataset imagefolder needs a path, as imagefolder:PATH"):
        parse_data_spec("imagefolder")
    monkeypatch.delenv("NAS_DATA", raising=False)
    assert data_home() == Path.home() / ".cache" / "nas" or "XDG_CACHE_HOME" in __import__("os").environ
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "d"))
    assert data_home() == tmp_path / "d"


def test_download_then_cache_hit(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture) -> None:
    archive, labels = cifar10_archive()
    publish(monkeypatch, mirror, "cifar10", {"cifar-10-python.tar.gz": archive})
    ds = load_dataset("cifar10")
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_val.shape == (3, 3, 32, 32) and ds.num_classes == 10
    assert ds.y_train.tolist() == labels
    assert mirror.requests == ["cifar-10-python.tar.gz"]
    assert f"fetching cifar10 from {mirror.url}cifar-10-python.tar.gz into {tmp_path / 'cache'}" in capsys.readouterr().err
    # the extracted set only: the archive is gone, nothing temporary is left
    assert cache_files(tmp_path) == ["cifar-10-batches-py"] + [f"cifar-10-batches-py/{f}" for f in sorted(
        ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
         "readme.html", "test_batch"])]
    mirror.stop()  # a present set needs no network
    again = load_dataset("cifar10")
    assert mirror.requests == ["cifar-10-python.tar.gz"] and again.y_train.tolist() == labels
    assert load_dataset(f"cifar10:{tmp_path / 'cache'}").y_train.tolist() == labels  # the same folder as a PATH


def test_cifar100_and_fashion_mnist(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(monkeypatch, mirror, "cifar100", {"cifar-100-python.tar.gz": cifar100_archive()})
    hundred = load_dataset("cifar100")
    assert hundred.num_classes == 100 and hundred.x_train.shape == (6, 3, 32, 32)
    publish(monkeypatch, mirror, "fashion_mnist", fashion_files())
    fashion = load_dataset("fashion_mnist")
    assert fashion.x_train.shape == (7, 1, 28, 28) and fashion.x_val.shape == (3, 1, 28, 28)
    assert fashion.y_train.tolist() == [0, 1, 2, 3, 4, 5, 6] and fashion.class_names[9] == "Ankle boot"
    assert is_present("fashion_mnist") and len(mirror.requests) == 5


def test_a_wrong_checksum_keeps_nothing(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = cifar10_archive()
    publish(monkeypatch, mirror, "cifar10", {"cifar-10-python.tar.gz": archive},
            md5={"cifar-10-python.tar.gz": "0" * 32})
    with pytest.raises(DataError, match=rf"^cifar10: the file downloaded from {mirror.url}cifar-10-python.tar.gz has "
                                        rf"md5 {_md5(archive)}, not the published 0{{32}}; it was deleted"):
        load_dataset("cifar10")
    assert cache_files(tmp_path) == []


def test_a_download_cut_short_keeps_nothing(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = cifar10_archive()
    publish(monkeypatch, mirror, "cifar10", {"cifar-10-python.tar.gz": archive})
    mirror.cut.add("cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=rf"^cifar10: cannot download {mirror.url}cifar-10-python.tar.gz \(the "
                                        r"connection broke before the whole file arrived\); without network"):
        load_dataset("cifar10")
    assert cache_files(tmp_path) == []
    mirror.cut.clear()  # the next try starts afresh and succeeds
    assert load_dataset("cifar10").x_train.shape == (20, 3, 32, 32)


def test_a_truncated_archive_keeps_nothing(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = cifar10_archive(per_batch=64)
    broken = archive[: len(archive) * 2 // 3]  # published so (its sum matches), but not a whole tar.gz
    publish(monkeypatch, mirror, "cifar10", {"cifar-10-python.tar.gz": broken})
    with pytest.raises(DataError, match=r"^cifar10: cannot extract .*cifar-10-python.tar.gz \(.*\); it was deleted; "
                                        r"without network"):
        load_dataset("cifar10")
    assert cache_files(tmp_path) == []


def test_an_archive_without_the_layout_keeps_nothing(mirror: Mirror, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _targz({"cifar-10-batches-py/data_batch_1": _pickle(2, b"labels", 10)[0]})  # the rest missing
    publish(monkeypatch, mirror, "cifar10", {"cifar-10-python.tar.gz": archive})
    with pytest.raises(DataError, match=r"^cifar10: the archive cifar-10-python.tar.gz has no "
                                        r"cifar-10-batches-py/data_batch_2; without network"):
        load_dataset("cifar10")
    assert cache_files(tmp_path) == []


def test_without_network_one_error_line(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on: the server is gone
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setenv("NAS_DATA_MIRROR", gone)
    assert main(["train", "vit_cifar", "--data", "cifar10", "--epochs", "1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1
    cache = tmp_path / "cache"
    assert err[0].startswith(f"error: cifar10: cannot download {gone}cifar-10-python.tar.gz (connection refused by "
                             f"127.0.0.1:")
    assert (f"without network, download {gone}cifar-10-python.tar.gz (md5 c58f30108f718f92721af3b95e74349a) on "
            f"another machine and extract it into {cache}, so that {cache / 'cifar-10-batches-py'} holds "
            f"data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch (or give "
            f"cifar10:PATH)") in err[0]
    with pytest.raises(DataError, match=r"^fashion_mnist: cannot download .*put the files, still gzipped, into "):
        load_dataset("fashion_mnist")
    assert cache_files(tmp_path) == []


def test_nas_train_fetches_and_trains(mirror: Mirror, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    archive, _ = cifar10_archive()
    publish(monkeypatch, mirror, "cifar10", {"cifar-10-python.tar.gz": archive})
    assert main(["train", "vit_cifar", "--data", "cifar10", "--epochs", "1", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"val_acc"' in out and mirror.requests == ["cifar-10-python.tar.gz"]
