"""The training recipe as one frozen, validated value."""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, closest
from nas.fields import FLOAT_MAX, INT32_MAX, integer, plain, real, show
from nas.train.randaugment import parse_randaugment

__all__ = ["TrainConfig"]

_AMP = ("auto", "bf16", "off")
_AUTO_BOOL = ("auto", True, False)
_COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network. Defaults suit short runs of small networks on small images."""

    # Budget. ``epochs`` fixes the schedule's length; ``seconds`` is a wall-clock cap that stops at the
    # end of the batch that crosses it (with only ``seconds``, the cosine follows elapsed time).
    epochs: int | None = 5
    seconds: float | None = None
    batch_size: int = 128  # small sets (4,000 images) need enough steps per epoch to learn in 5 epochs
    lr: float = 1e-3  # peak AdamW learning rate, reached at the end of the warm-up
    weight_decay: float = 0.05  # decoupled; never applied to norms, biases or position tables
    warmup_epochs: float = 1.0  # linear warm-up (fractions allowed: the schedule is per step); attention
    # layers are unstable under a full learning rate from random init
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio rather than zero
    label_smoothing: float = 0.1  # softer targets: better calibrated, less over-fitting on small sets
    grad_clip: float | None = 1.0  # max global grad norm; guards the first steps of attention nets
    subset: int | None = None  # train on only the first N training images after a seeded shuffle
    val_subset: int | None = None  # evaluate on only the first N validation images (quick searches)
    augment: bool = True  # random crop with zero padding, plus horizontal flip where the data allows it
    crop_pad: int = 4  # padding of the random crop, pixels (4 is the CIFAR convention)
    # The ImageNet recipes' batch regularisers (DeiT's: mixup 0.8, CutMix 1.0, random erasing 0.25),
    # applied on the device (nas.train.mixing); 0 leaves them off, as short runs want
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing coefficient of mixup
    cutmix_alpha: float = 0.0  # the same for CutMix; with both set, half the batches are CutMix
    random_erasing: float = 0.0  # probability that an image gets a random box of noise
    # The ImageNet recipes' image augmentation, on the device (nas.train.augment); None leaves it off.
    # RandomResizedCrop: area scale in [rrc_scale_min, 1], aspect ratio in [1/rrc_max_ratio, rrc_max_ratio];
    # it replaces the loader's padded crop (the flip stays)
    rrc_scale_min: float | None = None  # DeiT: 0.08
    rrc_max_ratio: float = 4 / 3
    randaugment: str | None = None  # timm-style "m9-mstd0.5-n2": magnitude, its noise std, ops per image
    # DeiT's repeated augmentation: each drawn image appears this many times per epoch, differently
    # augmented (DeiT and ShiftViT's code: 3); an epoch keeps its length, so it sees 1/N of the images
    repeated_aug: int = 1
    # Exponential moving average of the weights, kept beside the trained ones and evaluated each epoch
    # (``ema_val_acc``); None: off. DeiT's and ShiftViT's code keep one at 0.99996 per step.
    ema_decay: float | None = None
    eval_batch_size: int = 500  # evaluation has no backward pass: larger batches are cheaper
    amp: str = "auto"  # auto: bf16 autocast on CUDA only (CPU bf16 is slower than float32); bf16 | off
    # (explicit bf16 is honoured on CPU too)
    compile: bool = False  # torch.compile the model, on any device when true (on CPU, for short runs,
    # the compile time outweighs the gain: leave it off there unless testing the compiled path)
    # torch.compile backend: inductor generates kernels (C++ on CPU, Triton on CUDA); aot_eager traces
    # forward and backward the same way but runs them eagerly, which exercises the compiled path on a
    # CPU in seconds instead of a minute of C++ compilation (tests use it)
    compile_backend: str = "inductor"
    channels_last: str | bool = "auto"  # auto: on for models with real (overlapping) convolutions, any device
    device: str = "auto"  # auto | cpu | cuda[:N]
    save_path: str | None = None  # write the final state dict here (torch.save)

    def __post_init__(self) -> None:
        for name, rule in _NUMBERS.items():  # finite, in range; ints stay ints, floats become floats
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                object.__setattr__(self, name, rule(f"train config: {name}", value))
        if self.epochs is None and self.seconds is None:
            raise ConfigError("train config: give epochs, seconds or both (both are null)")
        if self.randaugment is not None:
            parse_randaugment(self.randaugment)
        if self.amp not in _AMP:
            raise ConfigError(f"train config: amp must be one of {', '.join(_AMP)}, got {show(self.amp)}"
                              f"{closest(str(self.amp), _AMP)}")
        if self.compile_backend not in _COMPILE_BACKENDS:
            raise ConfigError(f"train config: compile_backend must be one of {', '.join(_COMPILE_BACKENDS)}, "
                              f"got {show(self.compile_backend)}{closest(str(self.compile_backend), _COMPILE_BACKENDS)}")
        if self.channels_last not in _AUTO_BOOL or isinstance(self.channels_last, int) and not isinstance(
                self.channels_last, bool):
            raise ConfigError(f"train config: channels_last must be auto, true or false, got {show(self.channels_last)}")

    # -- documents ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with fields changed; ``None`` values are dropped so unset CLI flags pass."""
        unknown = [k for k in changes if k not in _FIELD_TYPES]
        if unknown:
            raise ConfigError(_unknown_message(unknown[0]))
        return TrainConfig.from_dict({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> "TrainConfig":
        """Build from a mapping (a YAML ``train:`` block); unknown keys and wrong types are errors."""
        if doc is None:
            return cls()
        if not isinstance(doc, Mapping):
            raise ConfigError(f"train config must be a mapping of field: value, got {type(doc).__name__}")
        values: dict[str, Any] = {}
        for key, value in doc.items():
            if key not in _FIELD_TYPES:
                raise ConfigError(_unknown_message(str(key)))
            values[key] = _coerce(str(key), value)
        return cls(**values)


def _unknown_message(key: str) -> str:
    return f"train config: unknown field {key!r}{closest(key, _FIELD_TYPES)}; known: {', '.join(_FIELD_TYPES)}"


def _allowed_types(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) else (hint,)
    return tuple(type(None) if a is None else a for a in args)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    name: _allowed_types(hint) for name, hint in typing.get_type_hints(TrainConfig).items()
}


def _coerce(key: str, value: Any) -> Any:
    """Check a value against the field's type; numbers are left to ``_NUMBERS`` (in ``__post_init__``)."""
    allowed = _FIELD_TYPES[key]
    value = plain(value)
    if key in _NUMBERS and (value is not None or key not in _OPTIONAL):
        return value
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif value is None:
        if type(None) in allowed:
            return None
    elif isinstance(value, int) and int in allowed:
        return value
    elif isinstance(value, (int, float)) and float in allowed:
        return float(value)
    elif isinstance(value, str) and str in allowed:
        return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise ConfigError(f"train config: {key} must be {names}, got {type(value).__name__} {show(value)}")


def _int(minimum: int, cap: int = INT32_MAX) -> Callable[[str, Any], int]:
    return lambda where, value: integer(where, value, minimum=minimum, cap=cap, error=ConfigError)


def _real(minimum: float, maximum: float | None = None, *, low_open: bool = False, high_open: bool = False,
          cap: float = FLOAT_MAX) -> Callable[[str, Any], float]:
    return lambda where, value: real(where, value, minimum=minimum, maximum=maximum, low_open=low_open,
                                     high_open=high_open, cap=cap, error=ConfigError)


# Every numeric field: its range (a rule of nas.fields) and, as cap, a bound past which the value is a typo.
_NUMBERS: dict[str, Callable[[str, Any], Any]] = {
    "epochs": _int(1, 10**6), "seconds": _real(0, low_open=True, cap=1e9), "batch_size": _int(1),
    "lr": _real(0, low_open=True), "weight_decay": _real(0), "warmup_epochs": _real(0, cap=1e6),
    "min_lr_ratio": _real(0, 1), "label_smoothing": _real(0, 0.999), "grad_clip": _real(0, low_open=True),
    "subset": _int(1), "val_subset": _int(1), "crop_pad": _int(0, 1024), "mixup_alpha": _real(0),
    "cutmix_alpha": _real(0), "random_erasing": _real(0, 1), "rrc_scale_min": _real(0, 1, low_open=True),
    "rrc_max_ratio": _real(1, cap=1e6), "repeated_aug": _int(1, 1024),
    "ema_decay": _real(0, 1, low_open=True, high_open=True), "eval_batch_size": _int(1),
}
_OPTIONAL = frozenset(name for name, types_ in _FIELD_TYPES.items() if type(None) in types_)
