"""INT8 weight schemes with one kernel path per backend, and the proof that they were applied.

Schemes (all decoder linear layers; embedding and lm_head stay 16-bit):

- ``w8a16``: per-output-channel symmetric int8 weights, 16-bit activations;
- ``w8a8``: the same weights plus per-token dynamic symmetric int8 activations.

Kernels, chosen by the device kind; there is no fallback to the 16-bit weights, which are
deleted once quantized:

==========  =================================================  ======================================
backend     w8a16                                              w8a8
==========  =================================================  ======================================
npu         torch_npu.npu_weight_quant_batchmatmul             npu_dynamic_quant + npu_quant_matmul
cuda        aten._weight_int8pack_mm                           torch._int_mm (M padded to >= 17)
cpu         aten._weight_int8pack_mm (K % 16 guarded)          torch._int_mm
==========  =================================================  ======================================

The weight layouts, scale dtypes and shapes follow docs/torch-npu.md#int8-operators: for w8a16
the weight is stored (N, K) and passed transposed with an (N,) scale in the activation dtype;
for w8a8 it is stored (K, N) contiguous with an (N,) float32 scale and a float32 per-token scale.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..stack.compat import is_compiling, require_int8

SCHEMES = ("w8a16", "w8a8")
# An int8 model whose linear weights are not below this fraction of the 16-bit ones was not
# quantized (int8 + scales is about 0.5x).
MAX_QUANTIZED_FRACTION = 0.55
# On a device, quantization must give back at least this fraction of the 16-bit linear bytes
# (about 0.5 is the ideal): less means the 16-bit weights are still held somewhere.
MIN_RELEASED_FRACTION = 0.4


class QuantizationError(Exception):
    """Quantization could not be applied or was not applied; never silently ignored."""


def quantize_per_channel(weight: Any) -> Tuple[Any, Any]:
    """(N, K) float -> (N, K) int8 and (N,) float32 scale, symmetric: w ~ q * scale."""
    import torch

    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def quantize_per_token(x: Any) -> Tuple[Any, Any]:
    """(M, K) float -> (M, K) int8 and (M,) float32 scale (the CPU/CUDA twin of npu_dynamic_quant)."""
    import torch

    xf = x.float()
    scale = xf.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    q = torch.round(xf / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


# --- kernels: (x2d, layer) -> y2d -----------------------------------------------------------

def _cpu_w8a16(x: Any, layer: "Any") -> Any:
    import torch

    return torch.ops.aten._weight_int8pack_mm(x, layer.qweight, layer.scale_act)


def _int_mm_w8a8(x: Any, layer: Any, min_rows: int) -> Any:
    import torch

    qx, sx = quantize_per_token(x)
    rows = qx.shape[0]
    if rows < min_rows:  # cuBLAS int8 GEMM needs M > 16
        qx = torch.nn.functional.pad(qx, (0, 0, 0, min_rows - rows))
    acc = torch._int_mm(qx, layer.qweight_kn)[:rows]
    return (acc.float() * sx[:, None] * layer.scale[None, :]).to(x.dtype)


def _cpu_w8a8(x: Any, layer: Any) -> Any:
    return _int_mm_w8a8(x, layer, 0)


def _cuda_w8a8(x: Any, layer: Any) -> Any:
    return _int_mm_w8a8(x, layer, 17)


def _npu_w8a16(x: Any, layer: Any) -> Any:
    import torch_npu

    return torch_npu.npu_weight_quant_batchmatmul(x, layer.qweight.transpose(-1, -2), layer.scale_act)


def _npu_w8a8(x: Any, layer: Any) -> Any:
    import torch_npu

    qx, pertoken = torch_npu.npu_dynamic_quant(x)
    return torch_npu.npu_quant_matmul(qx, layer.qweight_kn, layer.scale, pertoken_scale=pertoken, output_dtype=x.dtype)


KERNELS: Dict[Tuple[str, str], Tuple[str, Callable[[Any, Any], Any]]] = {
    ("cpu", "w8a16"): ("aten._weight_int8pack_mm", _cpu_w8a16),
    ("cpu", "w8a8"): ("torch._int_mm + per-token quant", _cpu_w8a8),
    ("cuda", "w8a16"): ("aten._weight_int8pack_mm", _cpu_w8a16),
    ("cuda", "w8a8"): ("torch._int_mm + per-token quant", _cuda_w8a8),
    ("npu", "w8a16"): ("torch_npu.npu_weight_quant_batchmatmul", _npu_w8a16),
    ("npu", "w8a8"): ("torch_npu.npu_dynamic_quant + npu_quant_matmul", _npu_w8a8),
}


def _dequant_w8a16(x: Any, layer: Any) -> Any:
    import torch

    # The form inductor fuses into one kernel (the int8 -> 16-bit conversion in the matmul's
    # prologue, the scale in its epilogue): only ever run inside a compiled graph.
    return torch.nn.functional.linear(x, layer.qweight.to(x.dtype)) * layer.scale_act


# Inside a compiled graph (graph mode) a scheme may run another form that the graph compiler
# turns into a better kernel; schemes absent here run their eager kernel inside the graph too.
GRAPH_KERNELS: Dict[Tuple[str, str], Tuple[str, Callable[[Any, Any], Any]]] = {
    ("cuda", "w8a16"): ("int8 weight dequantize + matmul (fused by inductor)", _dequant_w8a16),
}


def kernel_name(backend: str, scheme: str, graph: bool = False) -> str:
    """The int8 kernel a scheme runs on a backend, in eager or in graph mode."""
    found = GRAPH_KERNELS.get((backend, scheme)) if graph else None
    return (found or KERNELS[(backend, scheme)])[0]


def int8_linear_class() -> Any:
    import torch

    class Int8Linear(torch.nn.Module):
        """A bias-free linear layer whose weight lives on the device as int8 buffers."""

        is_quantized_linear = True

        def __init__(self, linear: Any, scheme: str, backend: str) -> None:
            super().__init__()
            if linear.bias is not None:
                raise QuantizationError("biased linear layers are not part of the Mistral architecture")
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.scheme, self.backend = scheme, backend
            self.kernel_name, self._kernel = KERNELS[(backend, scheme)]
            self._graph_kernel = GRAPH_KERNELS.get((backend, scheme), (None, None))[1]
            dtype = linear.weight.dtype
            q, scale = quantize_per_channel(linear.weight)
            if backend in ("cpu", "cuda") and scheme == "w8a16" and dtype == torch.bfloat16 and self.in_features % 16:
                # _weight_int8pack_mm segfaults for bf16 input when K % 16 != 0.
                raise QuantizationError(
                    f"in_features={self.in_features} is not a multiple of 16, which "
                    "aten._weight_int8pack_mm needs with bf16 activations"
                )
            if scheme == "w8a16":
                self.register_buffer("qweight", q.contiguous())  # (N, K)
                self.register_buffer("scale_act", scale.to(dtype))  # (N,), activation dtype
            else:
                self.register_buffer("qweight_kn", q.t().contiguous())  # (K, N)
                self.register_buffer("scale", scale)  # (N,), float32

        def forward(self, x: Any) -> Any:
            shape = x.shape
            kernel = self._graph_kernel if self._graph_kernel is not None and is_compiling() else self._kernel
            y = kernel(x.reshape(-1, shape[-1]), self)
            return y.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"{self.in_features}, {self.out_features}, scheme={self.scheme}, kernel={self.kernel_name}"

    return Int8Linear


def int8_linear(linear: Any, scheme: str, backend: str) -> Any:
    """An int8 replacement of one ``nn.Linear`` (Unsupported where torch lacks the kernel)."""
    require_int8(backend, scheme)
    return int8_linear_class()(linear, scheme, backend)


def quantize_model(model: Any, scheme: str, backend: str) -> List[str]:
    """Replace every nn.Linear inside the decoder layers; returns the replaced names.

    The 16-bit weights are dropped with the replaced modules.
    """
    import torch

    if scheme not in SCHEMES:
        raise QuantizationError(f"unknown int8 scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    if (backend, scheme) not in KERNELS:
        raise QuantizationError(f"no int8 {scheme} kernel for the {backend} backend")
    decoder = model.model.layers
    replaced = []
    for name, module in list(decoder.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, child_name, int8_linear(child, scheme, backend))
                # Drop the 16-bit weight now: the module list above keeps every replaced Linear
                # alive until this function returns, and with it all the 16-bit weights.
                del child.weight
                replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced


def allocated_bytes(backend: str) -> Optional[int]:
    """Device memory held by live tensors, after a collection and an emptied cache (None on a CPU)."""
    gc.collect()
    if backend == "cpu":
        return None
    import torch

    module = getattr(torch, backend)  # torch.cuda, or torch.npu once torch_npu is imported
    module.synchronize()
    module.empty_cache()
    return int(module.memory_allocated())


def check_memory_released(before: Optional[int], after: Optional[int], dense_linear_bytes: int, precision: str) -> Optional[int]:
    """Fail unless the device gave back >= 0.4 x the 16-bit linear bytes; returns the bytes freed."""
    if before is None or after is None:
        return None
    released = before - after
    if released < MIN_RELEASED_FRACTION * dense_linear_bytes:
        raise QuantizationError(
            f"quantization did not free the device memory: precision {precision} released "
            f"{released / 2**20:.1f} MiB of allocated memory ({before / 2**20:.1f} -> {after / 2**20:.1f} MiB), "
            f"less than {MIN_RELEASED_FRACTION} x the 16-bit linear weights ({dense_linear_bytes / 2**20:.1f} MiB): "
            "the 16-bit weights are still referenced"
        )
    return released


def check_quantized(model: Any, dense_linear_bytes: int, linear_bytes: int, precision: str) -> float:
    """Fail unless the decoder's linear weights really are int8 and about half the size."""
    import torch

    fraction = linear_bytes / dense_linear_bytes if dense_linear_bytes else 1.0
    int8_buffers = [b for b in model.model.layers.buffers() if b.dtype == torch.int8]
    if fraction > MAX_QUANTIZED_FRACTION or not int8_buffers:
        raise QuantizationError(
            f"quantization not applied: precision {precision} has linear weights of {linear_bytes / 2**20:.1f} MiB, "
            f"{fraction:.2f}x of the 16-bit {dense_linear_bytes / 2**20:.1f} MiB (must be <= {MAX_QUANTIZED_FRACTION}x), "
            f"{len(int8_buffers)} int8 tensors in the decoder"
        )
    return fraction


def fidelity(reference_logits: Any, logits: Any) -> Dict[str, float]:
    """Next-token distributions of one forward pass, int8 vs 16-bit, over every prompt position.

    kl: mean KL(p_16bit || p_int8) in nats; top1: fraction of positions whose argmax agrees;
    cosine: mean cosine similarity of the logit vectors.
    """
    import torch

    ref = reference_logits.float()
    cur = logits.float()
    logp_ref = torch.log_softmax(ref, dim=-1)
    logp_cur = torch.log_softmax(cur, dim=-1)
    kl = (logp_ref.exp() * (logp_ref - logp_cur)).sum(-1).mean()
    top1 = (ref.argmax(-1) == cur.argmax(-1)).float().mean()
    cosine = torch.nn.functional.cosine_similarity(ref, cur, dim=-1).mean()
    return {"fidelity_kl": float(kl), "fidelity_top1": float(top1), "fidelity_cosine": float(cosine)}
