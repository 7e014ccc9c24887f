"""Export the architecture a rule picks from a study: its genome, provenance and trained weights.

The exported file is an ordinary genome document (``nas build best.yaml`` and ``nas.load_genome``
read it) with a ``metadata`` block that loading ignores: which study and trial it came from, by which
rule, its metrics, its params and FLOPs as the study counted them, and the library versions.
Because the params and FLOPs travel with the file, :func:`verify_export` can rebuild the network and
re-count both, failing on any drift, the way torchvision checks the metadata of its model weights.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.analysis.select import Selection, select
from nas.analysis.study import StudyView, open_study
from nas.errors import NasError

__all__ = ["ExportError", "ExportResult", "VerifyResult", "export_trial", "verify_export", "load_weights",
           "checkpoint_of", "export_metadata"]

METRICS = ("val_acc", "val_loss", "train_acc", "train_loss", "img_per_s", "epochs", "latency_ms")


class ExportError(NasError):
    """The picked trial cannot be exported as asked (no checkpoint, weights that do not fit, drift)."""


@dataclass(frozen=True)
class VerifyResult:
    """What a rebuild of an exported genome counted; equal to the stored values, or verify raised."""

    key: str
    params: int
    flops: int
    flops_unit: str
    weights_loaded: bool = False


@dataclass(frozen=True)
class ExportResult:
    path: Path
    selection: Selection
    metadata: dict[str, Any]
    weights: Path | None = None
    verified: VerifyResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "trial": self.selection.number, "rule": self.selection.rule.text,
                "reason": self.selection.reason, "weights": None if self.weights is None else str(self.weights),
                "verified": None if self.verified is None else self.verified.__dict__, "metadata": self.metadata}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """NumPy scalars as plain Python numbers, which YAML writes as numbers rather than objects."""
    if hasattr(value, "item"):
        value = value.item()
    return value


def export_metadata(view: StudyView, selection: Selection, weights_sha256: str | None = None) -> dict[str, Any]:
    """The ``metadata`` block of an exported genome (see the module docstring)."""
    from nas.runtime import library_versions

    trial = view.trial(selection.number)
    attrs = trial.user_attrs
    objectives = {}
    for name, value in zip(view.objectives, trial.values or []):
        objectives[name] = int(value) if name in ("params", "flops") and float(value).is_integer() else float(value)
    meta: dict[str, Any] = {
        "study": view.name, "study_dir": str(view.dir), "trial": trial.number, "rule": selection.rule.text,
        "selected": selection.reason, "objectives": objectives, "directions": view.objectives,
        "metrics": {k: _plain(attrs[k]) for k in METRICS if attrs.get(k) is not None},
        "params": int(attrs["params"]), "flops": int(attrs["flops"]), "flops_unit": attrs.get("flops_unit"),
        "key": attrs.get("key"), "data": view.config.data, "budget": dict(view.config.budget),
        "seed": attrs.get("seed", view.config.seed), "device": attrs.get("device"),
        "trained_with": attrs.get("versions"), "versions": dict(library_versions()),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if weights_sha256:
        meta["weights_sha256"] = weights_sha256
    return {k: v for k, v in meta.items() if v is not None}


def checkpoint_of(view: StudyView, number: int) -> Path:
    """The stored state dict of trial ``number``, or an error that says how to get one."""
    trial = view.trial(number)
    if trial.user_attrs.get("scored_by") == "supernet":  # one-shot: the weights it was scored with, extracted
        from nas.supernet.export import inherited_checkpoint

        return inherited_checkpoint(view.dir, trial.user_attrs["genome"])
    recorded = trial.user_attrs.get("checkpoint")
    if not recorded:
        raise ExportError(
            f"trial {number} of study {view.name!r} kept no weights (the study ran with keep_checkpoints: "
            f"{view.config.keep_checkpoints}); run the study with keep_checkpoints: pareto or all to export weights")
    if "://" in str(recorded):  # persisted by Ray Tune to a cloud storage_path
        return _download(str(recorded))
    candidates = [Path(recorded), view.dir / "checkpoints" / Path(recorded).name]  # the study dir may have moved
    for path in candidates:
        if path.is_file():
            return path
    hint = (" (keep_checkpoints: pareto keeps only the front's weights)" if view.config.keep_checkpoints == "pareto"
            else "")
    raise ExportError(f"the checkpoint of trial {number} is missing: {recorded}{hint}")


def _download(uri: str) -> Path:
    """Copy a checkpoint file from a URI (``s3://``, ``gs://``, ...) to a local temporary file."""
    import tempfile

    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        local = Path(tempfile.mkdtemp(prefix="nas-weights-")) / Path(path).name
        pyarrow.fs.copy_files(path, str(local), source_filesystem=fs)
    except Exception as exc:  # noqa: BLE001 - unreachable bucket, missing credentials, missing file
        raise ExportError(f"the checkpoint {uri} cannot be read: {type(exc).__name__}: {exc}") from None
    return local


def load_weights(genome: Any, weights: str | Path) -> Any:
    """Build ``genome`` and load the state dict in ``weights`` with ``strict=True``; the model is in eval mode."""
    import torch

    from nas.genome import load_genome
    from nas.models import build_model

    path = Path(weights)
    if not path.is_file():
        raise ExportError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ExportError(f"{path}: not a readable state dict ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    model = build_model(load_genome(genome))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise ExportError(f"{path} does not fit the genome {load_genome(genome).key}: {detail}") from None
    return model.eval()


def verify_export(path: str | Path, weights: str | Path | None = None) -> VerifyResult:
    """Rebuild the genome exported at ``path``, re-count params and FLOPs, compare with its metadata.

    Counts are compared exactly (integers): any difference means the builder or the cost model changed
    since the study ran, and the exported numbers would mislead. With ``weights``, the state dict must
    also load into the rebuilt network with ``strict=True``.
    """
    from nas.cost import count_cost
    from nas.genome import load_genome, read_document

    path = Path(path)
    doc = read_document(path, error=ExportError)
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or "params" not in meta or "flops" not in meta:
        raise ExportError(f"{path} has no metadata block with params and flops (was it written by `nas export`?)")
    genome = load_genome(path)
    report = count_cost(genome)
    drift = []
    if meta.get("key") is not None and meta["key"] != genome.key:
        drift.append(f"key: stored {meta['key']}, rebuilt {genome.key}")
    for name, counted in (("params", int(report.params)), ("flops", int(report.flops))):
        stored = int(meta[name])
        if stored != counted:
            drift.append(f"{name}: stored {stored:,}, rebuilt {counted:,} ({counted - stored:+,})")
    if meta.get("flops_unit") is not None and meta["flops_unit"] != report.unit:
        drift.append(f"flops_unit: stored {meta['flops_unit']!r}, counted {report.unit!r}")
    if drift:
        raise ExportError(f"{path}: the rebuilt network drifted from the study's record: " + "; ".join(drift))
    if weights is not None:
        load_weights(genome, weights)
    return VerifyResult(key=genome.key, params=int(report.params), flops=int(report.flops), flops_unit=report.unit,
                        weights_loaded=weights is not None)


def export_trial(study: str | Path | StudyView, rule: str, out: str | Path, *, weights: str | Path | None = None,
                 verify: bool = False, confirmed: bool = False) -> ExportResult:
    """Pick a trial by ``rule`` and write its genome with metadata to ``out`` (and its weights to ``weights``).

    With ``confirmed`` the rule picks from the study's *confirmed* front (``nas study confirm``): the
    architectures non-dominated at their confirmed means, which the rule sees as the objective values;
    the metadata then carries the confirmed statistics (mean, std, interval, seeds, budget) beside the
    study's own values. Weights are checked to load into the network built from the picked genome
    before anything is written, so a failed export leaves no half-written files behind.
    """
    from nas.genome import parse_genome, save_genome

    view = study if isinstance(study, StudyView) else open_study(study)
    confirmation = None
    if confirmed:
        from nas.analysis.confirmed import confirmed_frame, load_confirmation

        confirmation = load_confirmation(view.dir)
        if confirmation is None:
            raise ExportError(f"study {view.name!r} has no confirmation in {view.dir / 'confirm'}; run "
                              f"`nas study confirm {view.dir}` first, or export without --confirmed")
        selection = select(confirmed_frame(confirmation), rule, view.objectives,
                           population="confirmed-front architectures")
    else:
        selection = select(view.frame(), rule, view.objectives)
    trial = view.trial(selection.number)
    if not trial.user_attrs.get("genome"):
        raise ExportError(f"trial {trial.number} of study {view.name!r} stored no genome")
    genome = parse_genome(trial.user_attrs["genome"])
    source = None
    if weights is not None:
        source = checkpoint_of(view, trial.number)
        load_weights(genome, source)
    metadata = export_metadata(view, selection, _sha256(source) if source is not None else None)
    if confirmation is not None:
        from nas.analysis.confirmed import confirmed_metadata

        metadata["confirmed"] = confirmed_metadata(confirmation, trial.number)
    weights_path = None
    if source is not None and weights is not None:  # the weights first: the larger file fails first on a full disk
        weights_path = Path(weights)
        if source.resolve() != weights_path.resolve():
            from nas.writes import atomic_copy

            atomic_copy(source, weights_path)  # a full disk names the destination and leaves no truncated copy
    path = save_genome(genome, out, metadata)
    verified = verify_export(path, weights_path) if verify else None
    return ExportResult(path=path, selection=selection, metadata=metadata, weights=weights_path, verified=verified)
