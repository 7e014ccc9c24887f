"""Zero-cost proxies: hand-computed values on tiny networks, the contract over every proxy and mixer, the CLI."""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.cli.main import main
from nas.data import load_dataset
from nas.errors import ConfigError, DataError, NasError
from nas.genome import Genome, genome_to_yaml
from nas.proxy import PROXIES, ProxyBatch, get_proxy, proxy_batch, score, score_all


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", seed=0)


@pytest.fixture(scope="module")
def batch16(synthetic) -> ProxyBatch:
    return proxy_batch(synthetic, 8, seed=0, image_size=16)


def test_registry_lists_the_four_proxies_and_names_the_closest_on_a_typo() -> None:
    assert list(PROXIES) == ["naswot", "synflow", "grad_norm", "snip"]
    with pytest.raises(ConfigError, match=r"unknown proxy 'nasswot'; did you mean 'naswot'\?; known: naswot, "):
        get_proxy("nasswot")


@pytest.mark.parametrize("layout", ["A", "R", "S", "C", "C-A"])
def test_every_proxy_scores_every_mixer_finitely_and_reproducibly(
        tiny_genome: Callable[..., Genome], batch16: ProxyBatch, layout: str) -> None:
    genome = tiny_genome(layout=layout, depths=2 if "-" not in layout else [1, 1], dims=32)
    first = score_all(list(PROXIES), genome, batch16, seed=0)
    assert all(math.isfinite(v) for v in first.values()), first
    assert score_all(list(PROXIES), genome, batch16, seed=0) == first  # same seed, same initial weights
    assert score("snip", genome, batch16, seed=1) != first["snip"]  # another seed, other weights


def test_scoring_leaves_the_callers_rng_and_module_alone(tiny_genome: Callable[..., Genome],
                                                         batch16: ProxyBatch) -> None:
    from nas.models import build_model

    torch.manual_seed(123)
    model = build_model(tiny_genome(layout="A", num_classes=10, in_channels=3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    values = {name: score(name, model, batch16) for name in PROXIES}
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # synflow's abs was on a copy
    assert all(p.grad is None for p in model.parameters())
    assert values["synflow"] > 0


def test_naswot_is_the_log_determinant_of_the_hamming_agreement_kernel() -> None:
    # One ReLU over the identity: the codes are the signs of the inputs themselves.
    x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])  # codes 110, 100, 001
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    got = score("naswot", model, ProxyBatch(x=x, y=torch.zeros(3, dtype=torch.long), num_classes=1))
    # agreements (3 - hamming): 110/100 -> 2, 110/001 -> 0, 100/001 -> 1
    expected = math.log(abs(torch.linalg.det(torch.tensor([[3.0, 2, 0], [2, 3, 1], [0, 1, 3]])).item()))
    assert got == pytest.approx(expected, rel=1e-9)


def test_synflow_of_a_linear_chain_is_twice_its_flow() -> None:
    # R = 1^T |W2| |W1| 1 and every layer's sum of |theta * dR/dtheta| equals R: two layers give 2R.
    w1 = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.0, 1.0]])  # [3, 2]
    w2 = torch.tensor([[2.0, -1.0, 0.5]])  # [1, 3]
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.LayerNorm(3), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w1)
        model[2].weight.copy_(w2)
    flow = float(w2.abs() @ w1.abs() @ torch.ones(2))  # the LayerNorm is taken out, as in Abdelfattah et al.
    batch = ProxyBatch(x=torch.randn(4, 2), y=torch.zeros(4, dtype=torch.long), num_classes=1)
    assert score("synflow", model, batch) == pytest.approx(math.log(2 * flow), rel=1e-12)


def test_synflow_says_so_when_the_flow_overflows_float64() -> None:
    layers = [nn.Linear(4, 4) for _ in range(40)]  # (4 * 1e8) ** 40 > 1.8e308
    for layer in layers:
        nn.init.constant_(layer.weight, 1e8)
    batch = ProxyBatch(x=torch.randn(2, 4), y=torch.zeros(2, dtype=torch.long), num_classes=4)
    with pytest.raises(NasError, match=r"synflow overflows float64 for this network \(40 weighted layers\)"):
        score("synflow", nn.Sequential(*layers), batch)


def test_grad_norm_and_snip_of_a_linear_classifier_match_the_closed_form_gradient() -> None:
    w = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(w)
    probs = torch.softmax(x @ w.T, dim=1)
    grad = (probs - torch.eye(2)[y]).T @ x / 3  # d mean-CE / dW for logits x W^T
    batch = ProxyBatch(x=x, y=y, num_classes=2)
    assert score("grad_norm", model, batch) == pytest.approx(float(grad.norm()), rel=1e-6)
    assert score("snip", model, batch) == pytest.approx(float((w * grad).abs().sum()), rel=1e-6)


def test_proxy_batch_is_seeded_normalised_and_checked(synthetic) -> None:
    a, b = proxy_batch(synthetic, 16, seed=0, image_size=16), proxy_batch(synthetic, 16, seed=1, image_size=16)
    assert tuple(a.x.shape) == (16, 3, 16, 16) and a.x.dtype == torch.float32 and a.num_classes == 10
    assert torch.equal(a.x, proxy_batch(synthetic, 16, seed=0, image_size=16).x) and not torch.equal(a.x, b.x)
    assert abs(float(proxy_batch(synthetic, 256, seed=0).x.mean())) < 0.2  # the training split's mean and std
    with pytest.raises(DataError, match="proxy batch size must be a whole number >= 2"):
        proxy_batch(synthetic, 1)
    with pytest.raises(DataError, match="proxy batch size 9999 exceeds the 512 training images of synthetic"):
        proxy_batch(synthetic, 9999)


def test_a_genome_for_another_image_size_is_refused(tiny_genome: Callable[..., Genome], synthetic) -> None:
    with pytest.raises(DataError, match="holds 32x32 images but the genome takes image_size 16"):
        score("naswot", tiny_genome(), proxy_batch(synthetic, 4))


def test_cli_scores_a_genome_file_as_json_and_reports_errors(tmp_path: Path, tiny_genome: Callable[..., Genome],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(genome_to_yaml(tiny_genome(layout="S")))
    assert main(["proxy", str(path), "--data", "synthetic", "--batch", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["scores"]) == list(PROXIES) and out["batch"] == 8 and out["layout"] == "S"
    assert set(out["seconds"]) == set(PROXIES)
    assert main(["proxy", str(path), "--data", "synthetic", "--proxy", "naswot", "--seed", "3", "--threads", "1",
                 "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["scores"]) == ["naswot"]
    assert main(["proxy", str(path), "--data", "synthetic", "--batch", "1"]) == 2
    assert "error: proxy batch size must be a whole number >= 2" in capsys.readouterr().err
    assert main(["proxy", str(path), "--threads", "0"]) == 2
    assert "error: --threads must be a whole number >= 1, got 0" in capsys.readouterr().err
    assert main(["proxy", str(path), "--proxy", "zen"]) == 2
    assert capsys.readouterr().err.startswith("error: nas proxy: argument --proxy: invalid choice: 'zen'")
