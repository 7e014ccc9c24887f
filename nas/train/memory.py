"""Out-of-memory as an outcome, not a crash: recognise it and give the memory back.

A search samples architectures whose activation memory spans orders of magnitude, so some trials do
not fit the (fraction of a) GPU they were given. Such a trial is recorded FAIL with the reason
"out of memory" and the reused Ray actor must start its next trial with the memory free: the failed
trial's model, optimizer state and activations stay reachable from the exception's traceback until it
is dropped, and PyTorch's caching allocator keeps freed blocks reserved until ``empty_cache``.
"""
from __future__ import annotations

import gc

import torch

__all__ = ["is_out_of_memory", "free_memory", "OOM_REASON"]

OOM_REASON = "out of memory"
# Allocator messages of out-of-memory errors that are not torch.cuda.OutOfMemoryError instances
# (cuBLAS/cuDNN workspaces, older code paths re-raising a RuntimeError).
_OOM_TEXT = ("CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA out-of-memory errors, however torch or a library raised them."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _OOM_TEXT)


def free_memory() -> None:
    """Collect unreachable tensors (the failed trial's model, optimizer, batches) and, on CUDA, return
    the allocator's cached blocks to the device so the next trial in this process starts clean."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
