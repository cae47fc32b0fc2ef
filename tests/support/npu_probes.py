"""Probe calls of the int8 operators, run through the real wheels' meta functions and the fake.

Each probe is written as tensor specs, so one table builds meta tensors for both sides. The
probes cover the calls the project makes (model/quant.py), the combinations the issue found the fake
wrong on, and the shape rules around them. Which side accepts what is not written here: the
conformance test runs the real meta function and requires the fake to give the same verdict.

DOCUMENTED_STRICTER lists the only disagreements allowed: limits the op documentation states and
the real kernel enforces at run time, but the meta function does not check. The test requires
exactly these disagreements, so a change on either side shows.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Tuple

M, K, N = 4, 128, 256  # 64-aligned, so the int64-scale w8a16 limits hold


class T(NamedTuple):
    """A meta tensor to be: shape, dtype name, and whether it is a transposed (N, K) view."""

    shape: Tuple[int, ...]
    dtype: str
    transposed: bool = False

    def build(self) -> Any:
        import torch

        dtype = getattr(torch, self.dtype)
        if self.transposed:
            return torch.empty(tuple(reversed(self.shape)), dtype=dtype, device="meta").t()
        return torch.empty(self.shape, dtype=dtype, device="meta")


class Probe(NamedTuple):
    id: str
    op: str
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]

    def build(self) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        import torch

        def value(v: Any) -> Any:
            if isinstance(v, T):
                return v.build()
            if isinstance(v, str) and v.startswith("dtype:"):
                return getattr(torch, v[len("dtype:"):])
            return v

        return tuple(value(a) for a in self.args), {k: value(v) for k, v in self.kwargs.items()}


WQ = "npu_weight_quant_batchmatmul"
DQ = "npu_dynamic_quant"
QMM = "npu_quant_matmul"
_W_T = T((K, N), "int8", transposed=True)  # model/quant.py: the (N, K) weight passed transposed
_QX, _W_KN = T((M, K), "int8"), T((K, N), "int8")
_F32_N, _PT = T((N,), "float32"), T((M,), "float32")


def _qmm(id: str, scale: T = _F32_N, x1: T = _QX, x2: T = _W_KN, **kwargs: Any) -> Probe:
    return Probe(id, QMM, (x1, x2, scale), kwargs)


PROBES: Tuple[Probe, ...] = (
    # w8a16: npu_weight_quant_batchmatmul(x, w.T, scale in x's dtype), as model/quant.py calls it
    Probe("wq-project-fp16", WQ, (T((M, K), "float16"), _W_T, T((N,), "float16")), {}),
    Probe("wq-project-bf16", WQ, (T((M, K), "bfloat16"), _W_T, T((N,), "bfloat16")), {}),
    Probe("wq-int64-scale", WQ, (T((M, K), "float16"), _W_T, T((N,), "int64")), {}),
    Probe("wq-int4-packed-int32", WQ, (T((M, K), "float16"), T((K, N // 8), "int32"), T((N,), "float16")), {}),
    Probe("wq-m0", WQ, (T((0, K), "float16"), _W_T, T((N,), "float16")), {}),
    Probe("wq-inner-precise", WQ, (T((M, K), "float16"), _W_T, T((N,), "float16")), {"inner_precise": 0}),
    Probe("wq-weight-dtype", WQ, (T((M, K), "float16"), _W_T, T((N,), "float16")), {"weight_dtype": None}),
    Probe("wq-scale-not-x-dtype", WQ, (T((M, K), "bfloat16"), _W_T, T((N,), "float16")), {}),
    Probe("wq-k-mismatch", WQ, (T((M, K // 2), "float16"), _W_T, T((N,), "float16")), {}),
    # w8a8 activations: npu_dynamic_quant(x)
    Probe("dq-project-fp16", DQ, (T((M, K), "float16"),), {}),
    Probe("dq-project-bf16", DQ, (T((M, K), "bfloat16"),), {}),
    Probe("dq-3d", DQ, (T((2, M, K), "float16"),), {}),
    Probe("dq-dst-type-int8", DQ, (T((M, K), "float16"),), {"dst_type": "dtype:int8"}),
    Probe("dq-1d", DQ, (T((K,), "float16"),), {}),
    # w8a8 matmul: npu_quant_matmul(qx, w_kn, scale_f32, pertoken_scale=..., output_dtype=x.dtype)
    _qmm("qmm-project-fp16", pertoken_scale=_PT, output_dtype="dtype:float16"),
    _qmm("qmm-project-bf16", pertoken_scale=_PT, output_dtype="dtype:bfloat16"),
    _qmm("qmm-project-3d", x1=T((2, M, K), "int8"), pertoken_scale=_PT, output_dtype="dtype:float16"),
    _qmm("qmm-bf16-scale-fp16-out", scale=T((N,), "bfloat16"), output_dtype="dtype:float16"),
    _qmm("qmm-bf16-scale-int8-out", scale=T((N,), "bfloat16")),
    _qmm("qmm-bf16-scale-bf16-out", scale=T((N,), "bfloat16"), output_dtype="dtype:bfloat16"),
    _qmm("qmm-bf16-scale-pertoken-fp16-out", scale=T((N,), "bfloat16"), pertoken_scale=_PT, output_dtype="dtype:float16"),
    _qmm("qmm-offset-fp16-out", offset=_F32_N, output_dtype="dtype:float16"),
    _qmm("qmm-offset-int8-out", offset=_F32_N),
    _qmm("qmm-offset-2d", offset=T((1, N), "float32")),
    _qmm("qmm-int64-scale-bf16-out", scale=T((N,), "int64"), output_dtype="dtype:bfloat16"),
    _qmm("qmm-int64-scale-fp16-out", scale=T((N,), "int64"), output_dtype="dtype:float16"),
    _qmm("qmm-pertoken-int8-out", pertoken_scale=_PT),
    _qmm("qmm-pertoken-int64-scale-fp16-out", scale=T((N,), "int64"), pertoken_scale=_PT, output_dtype="dtype:float16"),
    _qmm("qmm-pertoken-2d", pertoken_scale=T((M, 1), "float32"), output_dtype="dtype:float16"),
    _qmm("qmm-pertoken-wrong-length", pertoken_scale=T((M + 1,), "float32"), output_dtype="dtype:float16"),
    _qmm("qmm-int32-out-f32-scale", output_dtype="dtype:int32"),
    _qmm("qmm-int32-out-int64-scale", scale=T((N,), "int64"), output_dtype="dtype:int32"),
    _qmm("qmm-fp16-scale", scale=T((N,), "float16"), output_dtype="dtype:float16"),
    _qmm("qmm-int4-packed-int32", x1=T((M, K // 8), "int32"), x2=T((K, N // 8), "int32"), output_dtype="dtype:float16"),
    _qmm("qmm-int4-packed-bf16-out", x1=T((M, K // 8), "int32"), x2=T((K, N // 8), "int32"), output_dtype="dtype:bfloat16"),
    _qmm("qmm-k-mismatch", x2=T((K // 2, N), "int8"), output_dtype="dtype:float16"),
    _qmm("qmm-scale-wrong-n", scale=T((N // 2,), "float32"), output_dtype="dtype:float16"),
    _qmm("qmm-scale-2d", scale=T((1, N), "float32"), output_dtype="dtype:float16"),
    _qmm("qmm-group-sizes", pertoken_scale=_PT, output_dtype="dtype:float16", group_sizes=[0, 0, 0]),
)

# (probe id, torch_npu generation) -> the documented limit the fake enforces and the meta
# function does not check. Generations as in fakes.npu_ops.generation.
DOCUMENTED_STRICTER: Dict[Tuple[str, str], str] = {
    **{("wq-scale-not-x-dtype", g): "antiquant_scale has x's dtype (or int64)" for g in ("old", "mid", "new")},
    **{("wq-k-mismatch", g): "x is (M, K) and weight (K, N)" for g in ("old", "mid", "new")},
    **{("dq-1d", g): "x has rank > 1" for g in ("old", "mid", "new")},
    ("qmm-pertoken-wrong-length", "new"): "pertoken_scale is (m,)",
    ("qmm-fp16-scale", "new"): "scale is float32, int64 or bfloat16",
}
