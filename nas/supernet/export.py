"""A supernet-scored trial's inherited weights as a stand-alone state dict (``nas export --weights``).

The file holds exactly the network the trial was scored with: ``build_model(genome)`` with the
supernet's sliced weights and its batch norms recalibrated on the same training batches, so it loads
with ``strict=True`` into the plain network and can be fine-tuned like any trained trial's weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError

__all__ = ["inherited_checkpoint"]


def inherited_checkpoint(study_dir: str | Path, genome_doc: dict[str, Any]) -> Path:
    """Write (once) and return ``<study>/supernet/subnets/<key>.pt`` for the genome of a scored trial."""
    from nas.genome import parse_genome
    from nas.search.config import load_study_config
    from nas.search.storage import STUDY_FILE
    from nas.supernet.score import SubnetScorer
    from nas.supernet.study import SUPERNET_DIR, WEIGHTS_FILE
    from nas.supernet.train import _save

    study_dir = Path(study_dir)
    genome = parse_genome(genome_doc)
    out = study_dir / SUPERNET_DIR / "subnets" / f"{genome.key}.pt"
    if out.is_file():
        return out
    weights = study_dir / SUPERNET_DIR / WEIGHTS_FILE
    if not weights.is_file():
        raise NasError(f"the supernet weights of study {study_dir} are missing ({weights}); the trial was scored "
                       f"with them, so its inherited weights cannot be written")
    config = load_study_config(study_dir / STUDY_FILE)
    scorer = SubnetScorer(torch.load(weights, map_location="cpu", weights_only=False), data=config.data,
                          seed=config.seed, budget=dict(config.budget), constraints={}, study_dir=str(study_dir),
                          calibration_batches=config.strategy.calibration_batches, device="cpu")
    model = scorer.subnet(genome)
    _save(out, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    return out
