"""CUDA out-of-memory inside a trial: FAIL with reason "out of memory", memory freed for the next trial."""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

import nas.train
from nas.search.objective import TrialContext, run_trial
from nas.search.records import classify_result
from nas.train.memory import OOM_REASON, free_memory, is_out_of_memory

GENOME = {"image_size": 16, "num_classes": 10, "patch_size": 4, "pool": "mean", "position": "none",
          "layout": "S", "depths": [1], "dims": [24], "mlp_ratio": 2}
OBJECTIVES = ["val_acc", "flops"]


def test_out_of_memory_is_recognised() -> None:
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("CUDA out of memory"))  # not an allocator error type
    free_memory()  # no CUDA here: a plain collection, no error


def test_oom_trial_fails_frees_its_model_and_the_next_trial_in_the_process_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = TrialContext(study_dir=str(tmp_path), data="synthetic", objectives=tuple(OBJECTIVES),
                       budget={"epochs": 1, "batch_size": 32, "subset": 64, "val_subset": 32, "device": "cpu"})
    real_train = nas.train.train
    held: dict[str, Any] = {}

    def train_out_of_memory(genome: Any, *args: Any, **kwargs: Any) -> Any:
        from nas.models import build_model

        model = build_model(genome)  # what the trainer holds when the allocator gives up
        optimizer = torch.optim.AdamW(model.parameters())
        model(torch.zeros(2, 3, 16, 16)).sum().backward()
        optimizer.step()  # optimizer state allocated too
        model.cycle = [model, optimizer]  # a reference cycle (as hooks and compiled graphs make): needs gc
        held["model"], held["optimizer"] = weakref.ref(model), weakref.ref(optimizer)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)")

    monkeypatch.setattr(nas.train, "train", train_out_of_memory)
    reports: list[dict[str, Any]] = []
    failed = run_trial({"genome": GENOME, "key": "k"}, ctx, reports.append)
    # the failed trial's model and optimizer are gone by the time run_trial returns (only the
    # traceback held them; run_trial dropped it and collected)
    assert held["model"]() is None and held["optimizer"]() is None
    assert failed["status"] == "failed" and failed["reason"] == OOM_REASON
    assert failed["error"] == "out of memory: CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)"
    outcome = classify_result(reports[-1], False, OBJECTIVES)
    assert outcome.state == TrialState.FAIL and outcome.attrs["reason"] == OOM_REASON
    assert outcome.attrs["error"].startswith("out of memory")

    monkeypatch.setattr(nas.train, "train", real_train)  # the same process runs its next trial
    ok = run_trial({"genome": GENOME, "key": "k2"}, ctx, reports.append)
    assert ok["status"] == "complete" and "reason" not in ok
    assert classify_result(ok, False, OBJECTIVES).state == TrialState.COMPLETE
    assert ok["ended_at"] >= ok["started_at"] and ok["amp"] == "off" and ok["compiled"] is False


def test_other_failures_keep_their_own_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = TrialContext(study_dir=str(tmp_path), data="synthetic", objectives=tuple(OBJECTIVES),
                       budget={"epochs": 1, "device": "cpu"})

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(nas.train, "train", broken)
    final = run_trial({"genome": GENOME, "key": "k"}, ctx, lambda _r: None)
    assert final["error"] == "RuntimeError: mat1 and mat2 shapes cannot be multiplied" and "reason" not in final
