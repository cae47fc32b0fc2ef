"""The int8 operators of the fake torch_npu, with the argument rules of a given release and chip.

The rules are written from the op documentation (docs/torch-npu.md#int8-operators) and from what
the published wheels' meta functions accept and reject; tests/stack/test_npu_api_conformance.py runs the
same probe table through both and fails on any disagreement. Three generations of rules:

- ``old``: 2.1.0.post8 and post10 (checked both): no int32 output;
- ``mid``: 2.1.0.post12 to 2.10 (checked: 2.1.0.post12, post13, post17, 2.5.1, 2.6.0, 2.8.0;
  2.2 to 2.4 are assumed to behave like them);
- ``new``: 2.11 and later (checked: 2.11.0, 2.14.0): the scale/output/offset/per-token
  combination checks are gone from the meta function, and ``output_dtype`` is an ``int?`` in the
  schema (a ``torch.dtype`` passed through ``torch.ops`` is converted).

Keyword arguments follow each release's schema (checked on the same wheels): ``inner_precise``
and ``npu_dynamic_quant``'s ``group_index``/``dst_type`` from 2.1.0.post10, ``group_sizes`` from
2.1.0.post13 in the 2.1 line and from 2.6 (2.5.1 lacks it), ``weight_dtype`` and ``quant_mode``
from 2.11.

Chips (documentation): the Ascend 310P inference cards have no ``npu_dynamic_quant`` and no
per-token scale, and their w8a16 takes fp16 activations only; 2.1.0.post8 documents both int8
matmuls for Atlas A2 (Ascend910B*) only.

Documented limits that the meta functions do not check are kept (the real kernel enforces them
at run time); each is listed in tests/support/npu_probes.py DOCUMENTED_STRICTER.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from packaging.version import Version


class ContractError(RuntimeError):
    """A call that the real operator would reject (docs/torch-npu.md#int8-operators)."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ContractError(message)


def generation(version: str) -> str:
    v = Version(version)
    if v < Version("2.1.0.post12"):  # no int32 output yet
        return "old"
    if v < Version("2.11"):
        return "mid"
    return "new"


def has_group_sizes(version: str) -> bool:
    v = Version(version)
    return v >= Version("2.6") or Version("2.1.0.post13") <= v < Version("2.2")


def has_inner_precise(version: str) -> bool:
    return Version(version) >= Version("2.1.0.post10")


def has_dynamic_quant_dst_type(version: str) -> bool:
    return Version(version) >= Version("2.1.0.post10")


def is_310p(soc: str) -> bool:
    return soc.startswith("Ascend310P")


def _unexpected(name: str, kwargs: Dict[str, Any], allowed: Tuple[str, ...], version: str) -> None:
    extra = sorted(set(kwargs) - set(allowed))
    if extra:
        raise TypeError(f"{name}() got an unexpected keyword argument {extra[0]!r} (torch_npu {version})")


def make_ops(version: str, soc: str) -> Dict[str, Callable[..., Any]]:
    """npu_weight_quant_batchmatmul, npu_dynamic_quant and npu_quant_matmul for one release and chip."""
    import torch

    gen = generation(version)
    a2_only = Version(version) < Version("2.1.0.post10")  # 2.1.0.post8's documentation

    def _chip_supports_int8_matmul(name: str) -> None:
        if a2_only:
            _require(soc.startswith("Ascend910B"), f"{name} is supported on Atlas A2 only in torch_npu {version} (SoC {soc})")

    def npu_weight_quant_batchmatmul(x: Any, weight: Any, antiquant_scale: Any, antiquant_offset: Any = None,
                                     quant_scale: Any = None, quant_offset: Any = None, bias: Any = None,
                                     antiquant_group_size: int = 0, **kwargs: Any) -> Any:
        allowed = (("inner_precise",) if has_inner_precise(version) else ()) + (("weight_dtype",) if gen == "new" else ())
        _unexpected("npu_weight_quant_batchmatmul", kwargs, allowed, version)
        _chip_supports_int8_matmul("npu_weight_quant_batchmatmul")
        _require(x.dim() == 2 and x.dtype in (torch.float16, torch.bfloat16), "x must be 2-D fp16/bf16 (M, K)")
        if is_310p(soc):
            _require(x.dtype == torch.float16, f"w8a16 on {soc} takes fp16 activations only")
        _require(weight.dim() == 2 and weight.dtype in (torch.int8, torch.int32),
                 "weight must be a 2-D int8 tensor (K, N), or int32 holding packed int4")
        k, n = weight.shape
        if weight.dtype == torch.int32 and weight.is_contiguous():
            n = n * 8  # eight int4 values per int32 along N
        _require(x.shape[1] == k, f"x is (M, {x.shape[1]}) but weight is ({k}, {n}): pass the (N, K) weight transposed")
        _require(1 <= k <= 65535 and 1 <= n <= 65535, "K and N must be in [1, 65535]")
        if antiquant_scale.dtype == torch.int64:
            # From npu_trans_quant_param: fp16 x, per-channel, M in [1, 96], K and N 64-aligned.
            _require(x.dtype == torch.float16, "an int64 antiquant_scale needs fp16 x")
            _require(1 <= x.shape[0] <= 96, "an int64 antiquant_scale needs M in [1, 96]")
            _require(k % 64 == 0 and n % 64 == 0, "an int64 antiquant_scale needs K and N aligned to 64")
        else:
            _require(antiquant_scale.dtype == x.dtype, "antiquant_scale must have x's dtype (or int64)")
        _require(tuple(antiquant_scale.shape) in ((n,), (1, n), (1,), (1, 1)), "antiquant_scale must be (N,) or (1, N)")
        _require(antiquant_group_size == 0 or antiquant_group_size % 32 == 0, "group size must be 0 or a multiple of 32")
        if weight.dtype == torch.int32 or antiquant_scale.dtype == torch.int64 or x.device.type == "meta":
            return x.new_empty((x.shape[0], n), dtype=x.dtype)  # shape only: int4 unpacking is not modelled
        w = weight.float()
        if antiquant_offset is not None:
            w = w + antiquant_offset.float().reshape(-1)
        y = x.float() @ (w * antiquant_scale.float().reshape(-1))
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype)

    def npu_dynamic_quant(input: Any, *, smooth_scales: Any = None, **kwargs: Any) -> Tuple[Any, Any]:
        allowed = (("group_index", "dst_type") if has_dynamic_quant_dst_type(version) else ()) + (
            ("quant_mode", "dst_type_max") if gen == "new" else ())
        _unexpected("npu_dynamic_quant", kwargs, allowed, version)
        _require(not is_310p(soc), f"npu_dynamic_quant is not supported on {soc} (Atlas A2/A3 only)")
        dst_type = kwargs.get("dst_type")
        _require(input.dtype in (torch.float16, torch.bfloat16), "input must be fp16 or bf16")
        _require(input.dim() > 1, "input must have rank > 1")
        _require(dst_type in (None, torch.int8), "only int8 is modelled here")
        if input.device.type == "meta":
            return torch.empty_like(input, dtype=torch.int8), input.new_empty(input.shape[:-1], dtype=torch.float32)
        xf = input.float()
        scale = xf.abs().amax(dim=-1).clamp(min=1e-8) / 127.0
        y = torch.round(xf / scale.unsqueeze(-1)).clamp(-128, 127).to(torch.int8)
        return y, scale

    def npu_quant_matmul(x1: Any, x2: Any, scale: Any, *, offset: Any = None, pertoken_scale: Any = None,
                         bias: Any = None, output_dtype: Optional[Any] = None, **kwargs: Any) -> Any:
        _unexpected("npu_quant_matmul", kwargs, ("group_sizes",) if has_group_sizes(version) else (), version)
        _chip_supports_int8_matmul("npu_quant_matmul")
        _require(x1.dtype == x2.dtype and x1.dtype in (torch.int8, torch.int32), "x1 and x2 must both be int8 (or both int32, packed int4)")
        a4w4 = x1.dtype == torch.int32
        _require(2 <= x1.dim() <= 6, "x1 must have rank 2-6")
        _require(x2.dim() == 2 if a4w4 else 2 <= x2.dim() <= 6, "x2 must have rank 2-6 (2 for packed int4)")
        m, k1 = x1.shape[-2], x1.shape[-1]
        k2, n = x2.shape[-2], x2.shape[-1]
        if a4w4 and k1 != k2:  # x2 (K, N/8): N packed, x1 (M, K/8)
            _require(k1 * 8 == k2, f"packed int4: x2's K ({k2}) must be 8 x x1's last dim ({k1})")
            n = n * 8
        else:
            _require(k1 == k2, f"x1 (..., m, {k1}) and x2 ({tuple(x2.shape)}) do not chain: x2 must be (K, N)")
        _require(k1 <= 65535 and x2.shape[-1] <= 65535, "last dimensions must be <= 65535")
        batch = torch.broadcast_shapes(tuple(x1.shape[:-2]), tuple(x2.shape[:-2]))
        _require(scale.dim() == 1 and scale.shape[0] in (1, n), "scale must be 1-D (1,) or (N,)")
        _require(scale.dtype in (torch.float32, torch.int64, torch.bfloat16), "scale must be float32, int64 or bfloat16")
        out = torch.int8 if output_dtype is None else output_dtype
        allowed_out = {"old": (torch.int8, torch.float16, torch.bfloat16)}.get(
            gen, (torch.int8, torch.float16, torch.bfloat16, torch.int32))
        _require(out in allowed_out, f"output_dtype {out} is not supported by torch_npu {version}")
        if is_310p(soc):
            _require(out in (torch.int8, torch.float16), f"{soc} supports int8 and float16 outputs only")
            _require(scale.dtype != torch.bfloat16, f"{soc} takes float32 or int64 scales only")
        if offset is not None:
            _require(offset.dim() == 1 and offset.shape[0] in (1, n), "offset must be 1-D (1,) or (N,)")
            _require(offset.dtype == torch.float32, "offset must be float32")
        if pertoken_scale is not None:
            _require(not is_310p(soc), f"per-token scales are not supported on {soc}")
            _require(pertoken_scale.dtype == torch.float32, "pertoken_scale must be float32")
            _require(tuple(pertoken_scale.shape) == (m,), "pertoken_scale must be (m,)")
        if scale.dtype == torch.bfloat16:
            outs = (torch.bfloat16,) if gen == "old" else (torch.bfloat16, torch.int32)
            _require(out in outs, f"a bfloat16 scale needs a {' or '.join(map(str, outs))} output")
        if out == torch.int32:
            _require(scale.dtype in (torch.bfloat16, torch.float32), "an int32 output needs a bfloat16 or float32 scale")
        if a4w4 and (gen == "old" or pertoken_scale is None):
            _require(out == torch.float16, "packed int4 inputs need a float16 output")
        if gen != "new":  # checks the 2.11+ meta functions no longer make
            if out == torch.bfloat16:
                _require(scale.dtype in (torch.bfloat16, torch.float32), "a bfloat16 output needs a bfloat16 or float32 scale")
            if offset is not None:
                _require(out == torch.int8, "offset is only allowed with an int8 output")
            if pertoken_scale is not None:
                _require(out in (torch.float16, torch.bfloat16), "pertoken_scale needs an fp16 or bf16 output")
                if out == torch.float16:
                    _require(scale.dtype == torch.float32, "fp16 output with pertoken_scale needs a float32 scale")
        if bias is not None:
            _require(bias.dim() == 1 and bias.shape[0] == n, "bias must be (N,)")
            _require(bias.dtype in (torch.int32, torch.bfloat16, torch.float16, torch.float32), "unsupported bias dtype")
            if bias.dtype == torch.bfloat16:
                _require(out == torch.bfloat16, "a bfloat16 bias needs a bfloat16 output")
        shape = tuple(batch) + (m, n)
        if a4w4 or scale.dtype == torch.int64 or x1.device.type == "meta":
            return x1.new_empty(shape, dtype=out)  # shape only
        acc = (x1.to(torch.int64) @ x2.to(torch.int64)).float() * scale.float()
        if pertoken_scale is not None:
            acc = acc * pertoken_scale.unsqueeze(-1)
        if bias is not None:
            acc = acc + bias.float()
        return acc.to(out)

    return {
        "npu_weight_quant_batchmatmul": npu_weight_quant_batchmatmul,
        "npu_dynamic_quant": npu_dynamic_quant,
        "npu_quant_matmul": npu_quant_matmul,
    }
