"""What an architecture costs: parameters and FLOPs (fvcore, MACs), measured latency and memory."""
from nas.cost.cache import CostCache
from nas.cost.flops import COST_FORMAT, UNIT, CostReport, count_cost, count_params
from nas.cost.handles import ELEMENTWISE_OPS, einsum_macs, matmul_macs, sdpa_macs
from nas.cost.latency import LatencyReport, measure_latency

__all__ = [
    "COST_FORMAT",
    "ELEMENTWISE_OPS",
    "UNIT",
    "CostCache",
    "CostReport",
    "LatencyReport",
    "count_cost",
    "count_params",
    "einsum_macs",
    "matmul_macs",
    "measure_latency",
    "sdpa_macs",
]
