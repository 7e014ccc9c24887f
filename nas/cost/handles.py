"""Per-operator FLOP formulas that complete fvcore's table for the ops our mixers use.

Convention (fvcore's, and that of the ViT, DeiT, ShiftViT and CoAtNet papers): one fused
multiply-add is one flop, i.e. the counts are MACs. Only ops that multiply-accumulate are counted:
matrix products, convolutions and attention. Elementwise ops (softmax, GELU, adds, the relative-bias
add), reductions, pooling and data movement (the shift's slice copies) count zero.

fvcore silently reports ops without a handle as "unsupported" and counts them as zero. Out of the
box it misses ``aten::scaled_dot_product_attention`` entirely, rounds einsum through
``np.einsum_path`` (whose "optimized flop" figure is FLOPs with a factor 2 for contractions, halved and
floored), and its matmul handle assumes both operands have the same batch shape. The handles here fix
all three; :data:`ELEMENTWISE_OPS` is the allow-list of what may remain unsupported.

Norms (layer, group, batch) are not counted: at inference they fold into the neighbouring linear
map, the papers leave them out, and counting them would break the closed forms of
:mod:`nas.cost.analytic` (they are under 0.5% of every preset).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "ELEMENTWISE_OPS",
    "IGNORED_OPS",
    "UNCOUNTED_OPS",
    "OP_HANDLES",
    "einsum_macs",
    "einsum_flop_jit",
    "matmul_flop_jit",
    "matmul_macs",
    "sdpa_flop_jit",
    "sdpa_macs",
]

Handle = Callable[[list[Any], list[Any]], "int | Counter[str]"]

# Ops that do no multiply-accumulate work and that fvcore therefore reports as "unsupported" (and
# counts as zero): elementwise arithmetic and activations, reductions, pooling, random masks. The
# unsupported list of every genome must stay inside this set (tests/test_cost.py asserts it).
ELEMENTWISE_OPS: frozenset[str] = frozenset(
    f"aten::{op}"
    for op in (
        # arithmetic (also the scalar shape arithmetic einops records while tracing)
        "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "pow", "sqrt", "rsqrt",
        "exp", "log", "abs", "reciprocal", "square", "lerp", "addcmul", "addcdiv", "where", "erf",
        # activations and normalised exponentials
        "softmax", "log_softmax", "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
        "hardswish", "hardsigmoid", "leaky_relu", "elu", "relu6", "hardtanh",
        # reductions and pooling (comparisons and sums, no multiply-accumulate)
        "mean", "sum", "amax", "max_pool2d", "avg_pool2d", "adaptive_max_pool2d", "logsumexp",
        # stochastic depth / dropout masks (training mode only)
        "bernoulli_", "dropout_", "feature_dropout", "alpha_dropout",
    )
)

# Pure data movement that fvcore does not already ignore: explicitly zero, not "unsupported".
IGNORED_OPS: frozenset[str] = frozenset(
    f"aten::{op}"
    for op in (
        "pad", "clone", "repeat", "expand_as", "view_as", "movedim", "moveaxis", "flip", "tile",
        "index_select", "masked_select", "scatter", "empty_like", "ones_like", "fill_", "zero_",
        "contiguous", "lift_fresh", "detach_", "resolve_conj", "resolve_neg", "alias",
        "view_as_complex", "view_as_real",
    )
)

# Ops fvcore counts by default that this convention leaves out: norms (see the module docstring) and
# average pooling, a sum like ``mean`` (which fvcore already leaves uncounted).
UNCOUNTED_OPS: frozenset[str] = frozenset(
    {"aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::instance_norm", "aten::adaptive_avg_pool2d"}
)


def _shape(value: Any) -> list[int]:
    """Static shape of a traced value (the trace runs on concrete tensors, so it is always known)."""
    if not value.isCompleteTensor():  # pragma: no cover - a trace on real tensors has full shapes
        raise ValueError(f"operand of unknown shape in the trace: {value}")
    return list(value.type().sizes())


# -- attention ------------------------------------------------------------------------------------
def sdpa_macs(q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> int:
    """``softmax(Q Kᵀ) V``: ``Q Kᵀ`` costs ``N·M·d`` and ``A V`` costs ``N·M·d_v`` per batch entry.

    For self-attention with ``H`` heads of width ``d`` on ``N`` tokens this is ``2·B·H·N²·d``. The
    scale, the additive mask (relative bias) and the softmax are elementwise and not counted. Batch
    dims broadcast as in the op (grouped-query attention counts per query head).
    """
    n, d = q[-2], q[-1]
    m, dv = k[-2], v[-1]
    batch = _broadcast(list(q[:-2]), list(k[:-2]), list(v[:-2]))
    return math.prod(batch) * n * m * (d + dv)


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention(q, k, v, attn_mask, ...)``."""
    return sdpa_macs(_shape(inputs[0]), _shape(inputs[1]), _shape(inputs[2]))


# -- matmul ---------------------------------------------------------------------------------------
def _broadcast(*shapes: list[int]) -> list[int]:
    """Broadcast batch shapes (numpy rules, sizes of 1 stretch)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        sizes = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        out.append(max(sizes))
    return out


def matmul_macs(a: Sequence[int], b: Sequence[int]) -> int:
    """``torch.matmul`` with its promotion of 1-D operands and broadcasting of batch dims.

    ``[..., n, k] @ [..., k, m]`` costs ``prod(broadcast(...)) · n · k · m``. fvcore's handle
    computes ``prod(a) · m``, which undercounts when ``b`` carries batch dims that ``a`` lacks.
    """
    a, b = list(a), list(b)
    if len(a) == 1:
        a = [1, a[0]]
    if len(b) == 1:
        b = [b[0], 1]
    if a[-1] != b[-2]:
        raise ValueError(f"matmul shapes do not contract: {a} @ {b}")
    batch = _broadcast(a[:-2], b[:-2])
    return math.prod(batch) * a[-2] * a[-1] * b[-1]


def matmul_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::matmul``, ``aten::mm`` and ``aten::bmm``."""
    return matmul_macs(_shape(inputs[0]), _shape(inputs[1]))


# -- einsum ---------------------------------------------------------------------------------------
def _parse_equation(equation: str, shapes: Sequence[Sequence[int]]) -> tuple[list[str], str, dict[str, int]]:
    """Split an einsum equation into operand subscripts and output, expanding ``...`` to letters."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum {equation!r} names {len(terms)} operands but got {len(shapes)}")
    used = set(equation)
    spare = (c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZαβγδεζηθικλμνξοπρστυφχψω" if c not in used)
    ell_rank = max((len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(next(spare) for _ in range(ell_rank))
    expanded = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            k = len(shape) - (len(term) - 3)
            term = term.replace("...", ell[ell_rank - k :] if k else "")
        if len(term) != len(shape):
            raise ValueError(f"einsum term {term!r} does not match an operand of shape {list(shape)}")
        expanded.append(term)
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit output: broadcast dims, then letters that occur once, in alphabetical order
        counts = Counter("".join(expanded))
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes: dict[str, int] = {}
    for term, shape in zip(expanded, shapes):
        for c, n in zip(term, shape):
            sizes[c] = max(sizes.get(c, 1), int(n))
    return expanded, out, sizes


def einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """Exact MACs of an einsum: each pairwise contraction costs the product of its distinct index sizes.

    Operands are contracted left to right, as ``torch.einsum`` does without opt_einsum; for the
    two-operand case (all of ours) the cost is simply the product over all distinct indices, e.g.
    re-attention's ``bhij,hg->bgij`` costs ``B·H·G·N²``. One operand alone (a sum or permutation)
    multiplies nothing and counts zero.
    """
    terms, out, sizes = _parse_equation(equation, shapes)
    total, current = 0, terms[0]
    for i, nxt in enumerate(terms[1:], start=1):
        union = set(current) | set(nxt)
        total += math.prod(sizes[c] for c in union)
        later = set(out).union(*terms[i + 1 :])
        current = "".join(c for c in sorted(union) if c in later)
    return total


def einsum_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::einsum(equation, [operands], path)``."""
    equation = inputs[0].toIValue()
    shapes = [_shape(v) for v in inputs[1].node().inputs()]
    return einsum_macs(equation, shapes)


def _zero(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """A handle that counts nothing (and leaves no zero entry in the per-operator breakdown)."""
    return Counter()


# Handles added to (or replacing) fvcore's defaults; ``None`` marks an op as known-zero.
OP_HANDLES: dict[str, Handle | None] = {
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
    "aten::einsum": einsum_flop_jit,
    "aten::matmul": matmul_flop_jit,
    "aten::mm": matmul_flop_jit,
    "aten::bmm": matmul_flop_jit,
    **{op: _zero for op in UNCOUNTED_OPS},
    **{op: None for op in IGNORED_OPS},
}
