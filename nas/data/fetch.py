"""Standard datasets by name: fetched once into a cache, checked against the published checksums.

``--data cifar10`` (``cifar100``, ``fashion_mnist``) finds the set in the cache folder
(``$NAS_DATA``, else the user's cache folder, ``~/.cache/nas`` on Linux) or downloads it there first.
Fetching, checksum checks and the atomic write are pooch's: a download goes to a temporary file in the
cache folder, is checked against the md5 the dataset's authors publish (the same sums torchvision
pins), and only then renamed into place; a wrong or cut-short download is deleted, never read as data.
An archive is extracted into a temporary folder that is renamed into place whole, then deleted, so the
cache holds either the complete extracted set or nothing of it, and a present set is never fetched
again. ``$NAS_DATA_MIRROR`` replaces the upstream folder URL (a local mirror; the tests' HTTP server).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nas.errors import DataError

__all__ = ["RemoteFile", "Source", "SOURCES", "data_home", "fetch", "is_present"]

ENV_HOME = "NAS_DATA"
ENV_MIRROR = "NAS_DATA_MIRROR"


@dataclass(frozen=True)
class RemoteFile:
    """One published file and its published md5."""

    name: str
    md5: str


@dataclass(frozen=True)
class Source:
    """Where a dataset is published and what it looks like once in the cache.

    ``folder`` (under the cache folder) is what the reader is given; ``expect`` the files that must be
    in it for the set to count as present. ``archive``: the single file is a tar.gz whose top folder is
    ``folder``; otherwise the files themselves are the data and land in ``folder`` as published.
    """

    name: str
    page: str  # the authors' page, quoted in messages
    base_url: str  # folder URL the files are published under
    files: tuple[RemoteFile, ...]
    folder: str
    expect: tuple[str, ...]
    archive: bool

    def url(self, file: RemoteFile) -> str:
        base = os.environ.get(ENV_MIRROR) or self.base_url
        return base.rstrip("/") + "/" + file.name


# The upstream files and md5 sums as the authors publish them (torchvision pins the same ones).
SOURCES: dict[str, Source] = {
    "cifar10": Source(
        "cifar10", "https://www.cs.toronto.edu/~kriz/cifar.html", "https://www.cs.toronto.edu/~kriz/",
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",), archive=True),
    "cifar100": Source(
        "cifar100", "https://www.cs.toronto.edu/~kriz/cifar.html", "https://www.cs.toronto.edu/~kriz/",
        (RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        "cifar-100-python", ("train", "test"), archive=True),
    "fashion_mnist": Source(
        "fashion_mnist", "https://github.com/zalandoresearch/fashion-mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
         RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
         RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
        "fashion-mnist", ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                          "t10k-labels-idx1-ubyte.gz"), archive=False),
}


def data_home() -> Path:
    """The cache folder: ``$NAS_DATA`` when set, else the user's cache folder for ``nas``."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("nas"))


def is_present(name: str, home: Path | None = None) -> bool:
    """Whether the set ``name`` is complete in the cache (no network is needed to read it)."""
    src = SOURCES[name]
    folder = (home or data_home()) / src.folder
    return all((folder / f).is_file() for f in src.expect)


def _by_hand(src: Source, home: Path) -> str:
    """How to place the files by hand, for the message of a failed download."""
    files = ", ".join(f"{src.url(f)} (md5 {f.md5})" for f in src.files)
    if src.archive:
        return (f"without network, download {files} on another machine and extract it into {home}, so that "
                f"{home / src.folder} holds {', '.join(src.expect)} (or give {src.name}:PATH)")
    return (f"without network, download {files} on another machine and put the files, still gzipped, into "
            f"{home / src.folder} (or give {src.name}:PATH)")


def fetch(name: str) -> Path:
    """The folder of the set ``name`` in the cache, downloaded, checked and extracted first if absent."""
    src = SOURCES[name]
    home = data_home()
    folder = home / src.folder
    if is_present(name, home):
        return folder
    try:
        (home if src.archive else folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{name}: cannot create the data cache folder {home} ({exc.strerror or exc}); set "
                        f"{ENV_HOME} to a writable folder, or give {name}:PATH") from None
    try:
        for file in src.files:
            if not src.archive and (folder / file.name).is_file():
                continue  # fetched and checked before an earlier run was cut short
            archive = _download(src, file, home if src.archive else folder, home)
            if src.archive:
                _extract(src, archive, home)
    except DataError:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # made for this fetch: an empty folder must not look like a set
        raise
    if not is_present(name, home):
        raise DataError(f"{name}: the files fetched from {src.url(src.files[0])} lack "
                        f"{', '.join(f for f in src.expect if not (folder / f).is_file())}; {_by_hand(src, home)}")
    return folder


def _download(src: Source, file: RemoteFile, where: Path, home: Path) -> Path:
    """One file into ``where`` via pooch: a temporary file, checked, then renamed; deleted if wrong."""
    import pooch

    url = src.url(file)
    print(f"fetching {src.name} from {url} into {where} (once; {src.page})", file=sys.stderr, flush=True)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # the line above says it; pooch's own INFO line would repeat it
    try:
        path = pooch.retrieve(url, known_hash=f"md5:{file.md5}", fname=file.name, path=where,
                              progressbar=sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None)
    except ValueError as exc:  # pooch: the downloaded file's hash is not the known one (the file is deleted)
        found = re.search(r"got\s+'?(?:md5:)?([0-9a-fA-F]{32})", str(exc))
        got = found.group(1) if found else "another"
        raise DataError(f"{src.name}: the file downloaded from {url} has md5 {got}, not the published "
                        f"{file.md5}; it was deleted (a damaged or changed download); try again, or "
                        f"{_by_hand(src, home)}") from None
    except Exception as exc:  # noqa: BLE001 - no network, refused, cut short, HTTP error: all one message
        raise DataError(f"{src.name}: cannot download {url} ({_reason(exc, url)}); {_by_hand(src, home)}") from None
    finally:
        logger.setLevel(level)
    return Path(path)


def _reason(exc: Exception, url: str) -> str:
    """Why a download failed, in a few words (requests' own messages nest three exceptions deep)."""
    from urllib.parse import urlsplit

    text = " ".join(str(exc).split())
    host = urlsplit(url).netloc
    if any(s in text for s in ("NameResolutionError", "Name or service not known", "Temporary failure in name",
                               "nodename nor servname")):
        return f"cannot resolve {urlsplit(url).hostname}: no network or no DNS"
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return f"connection refused by {host}"
    if "timed out" in text.lower():
        return f"no answer from {host} (timed out)"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the connection broke before the whole file arrived"
    reason = f"{type(exc).__name__}: {text}"
    return reason if len(reason) <= 160 else reason[:157] + "..."


def _extract(src: Source, archive: Path, home: Path) -> None:
    """Extract ``archive`` into a temporary folder in ``home``, rename its top folder into place, delete it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.folder}-", dir=home))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")  # no absolute paths, links out, devices
            else:  # pragma: no cover - Python before 3.10.12
                tar.extractall(tmp)
        extracted = tmp / src.folder
        missing = [f for f in src.expect if not (extracted / f).is_file()]
        if missing:
            raise DataError(f"{src.name}: the archive {archive.name} has no {src.folder}/{missing[0]}; "
                            f"{_by_hand(src, home)}")
        try:
            extracted.rename(home / src.folder)
        except OSError:  # another process put the set in place meanwhile: keep theirs
            if not is_present(src.name, home):
                raise
    except DataError:  # a ValueError too: said in its own words above
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise DataError(f"{src.name}: cannot extract {archive} ({type(exc).__name__}: {exc}); it was deleted; "
                        f"{_by_hand(src, home)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        archive.unlink(missing_ok=True)  # extracted (or useless): the cache keeps the set once
