"""A built network's forward names what it got, what it takes and the call that fixes it."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nas
from nas.errors import DataError
from nas.models import build_model
from nas.models.inputs import InputShapeError, InputTypeError

BUILT = r"this network was built for inputs \[B, 3, 32, 32\] \(genome image_size 32, in_channels 3\)"
TINY = {"image_size": 32, "num_classes": 10, "patch_size": 8, "stages": [{"mixer": "attention", "depth": 1, "dim": 32,
                                                                          "heads": 2}]}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(nas.load_genome(TINY))


@pytest.mark.parametrize("x, error, advice", [
    (np.zeros((1, 3, 32, 32), np.float32), InputTypeError, r"got a numpy\.ndarray float32 \[1, 3, 32, 32\]; convert it "
                                                          r"with torch\.as_tensor\(x, dtype=torch\.float32\)"),
    ([[0.0]], InputTypeError, r"as a torch\.Tensor; got a list$"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), InputTypeError, r"got torch\.uint8; convert with "
                                                                   r"x\.to\(torch\.float32\) / 255"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.float64), InputTypeError, r"got torch\.float64; convert with "
                                                                     r"x\.to\(torch\.float32\) \(or model\.to"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.half), InputTypeError, r"got torch\.float16"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.int64), InputTypeError, r"got torch\.int64; convert with x\.to\(torch\.float32\)$"),
    (torch.zeros(1, 3, 32, 32, device="meta"), InputTypeError, r"got a meta tensor \[1, 3, 32, 32\], which holds no values"),
    (torch.zeros(2, 32, 32, 3), InputShapeError, r"got \[2, 32, 32, 3\]: channels last \(\[B, H, W, C\]\); move them "
                                                 r"with x\.permute\(0, 3, 1, 2\)$"),
    (torch.zeros(3, 32, 32), InputShapeError, r"got \[3, 32, 32\]: one image without its batch axis; add it with "
                                              r"x\.unsqueeze\(0\)$"),
    (torch.zeros(32, 32, 3), InputShapeError, r"one image, channels last; use x\.permute\(2, 0, 1\)\.unsqueeze\(0\)$"),
    (torch.zeros(2, 1, 32, 32), InputShapeError, r"got \[2, 1, 32, 32\]: 1 channel\(s\) for a network of 3; repeat a grey "
                                                 r"channel with x\.expand\(-1, 3, -1, -1\), or build the genome with "
                                                 r"in_channels 1$"),
    (torch.zeros(2, 3, 64, 64), InputShapeError, r"got \[2, 3, 64, 64\]: 64x64 images; resize them to 32x32 .*or build "
                                                 r"the genome with image_size 64$"),
    (torch.zeros(2, 3, 32, 48), InputShapeError, r"32x48 images; .*the network takes square images"),
    (torch.zeros(2, 3, 32, 32, 1), InputShapeError, r"5 axes, the network takes 4"),
], ids=["numpy", "list", "uint8", "float64", "half", "int64", "meta", "nhwc", "no batch", "one hwc image",
        "grey into rgb", "64x64", "not square", "5 axes"])
def test_each_wrong_input_gets_its_own_advice(model: torch.nn.Module, x: object, error: type, advice: str) -> None:
    with pytest.raises(error, match=rf"^{BUILT}.*{advice}") as info:
        model(x)
    assert isinstance(info.value, DataError) and not re.search(r"\btensor\(\d", str(info.value))  # plain ints


def test_the_right_input_and_autocast_pass(model: torch.nn.Module) -> None:
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(torch.zeros(2, 3, 32, 32, dtype=torch.bfloat16)).shape == (2, 10)
    assert model.double()(torch.zeros(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    model.float()


def test_a_network_on_the_meta_device_says_it_cannot_run_and_is_still_counted() -> None:
    from nas.cost import count_cost

    with torch.device("meta"):
        meta = build_model(nas.load_genome(TINY))
    with pytest.raises(InputTypeError, match=r"weights are on the meta device .*build it on a real device"):
        meta(torch.zeros(1, 3, 32, 32))
    assert count_cost(meta).params == count_cost(TINY).params  # counted from its genome


@pytest.mark.parametrize("threads", [-1, 0, 1.5, "2", 10**6])
def test_count_cost_threads_are_checked(threads: object) -> None:
    from nas.cost import count_cost

    with pytest.raises(nas.NasError, match=r"^count_cost\(threads\): threads must be a whole number >= 1"):
        count_cost(TINY, threads=threads)
