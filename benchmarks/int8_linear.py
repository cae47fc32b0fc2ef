"""The int8 linear of each scheme against the 16-bit linear, at Mistral-7B shapes.

    python benchmarks/int8_linear.py --device cpu --m 1 8 32

Prints the median time per call, the speed-up over bf16, and the weight bytes each reads.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from pytest_npuperf.devices import resolve_device
from pytest_npuperf.model.quant import int8_linear_class

SHAPES = ((4096, 4096), (4096, 14336), (14336, 4096))  # (in_features K, out_features N)


def timed(fn, x, device, repeats: int) -> float:
    for _ in range(3):
        fn(x)
    device.synchronize()
    times = []
    for _ in range(repeats):
        timer = device.timer()
        timer.start()
        fn(x)
        times.append(timer.stop())
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--m", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device, _ = resolve_device(args.device)
    int8_linear = int8_linear_class()
    print(f"device {device.kind} ({device.name()}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"median of {args.repeats} calls")
    print(f"{'K x N':>13} {'M':>3} {'bf16 ms':>9} {'w8a16 ms':>9} {'x':>5} {'w8a8 ms':>9} {'x':>5}  weight MiB bf16/int8")
    torch.manual_seed(0)
    with torch.inference_mode():
        for k, n in SHAPES:
            with torch.device(device.torch_device):
                dense = torch.nn.Linear(k, n, bias=False, dtype=torch.bfloat16)
            w8a16 = int8_linear(dense, "w8a16", device.kind)
            w8a8 = int8_linear(dense, "w8a8", device.kind)
            for m in args.m:
                x = torch.randn(m, k, dtype=torch.bfloat16, device=device.torch_device)
                t16 = timed(dense, x, device, args.repeats)
                ta = timed(w8a16, x, device, args.repeats)
                tb = timed(w8a8, x, device, args.repeats)
                print(f"{k:>6}x{n:<6} {m:>3} {t16 * 1e3:9.3f} {ta * 1e3:9.3f} {t16 / ta:5.2f} {tb * 1e3:9.3f} {t16 / tb:5.2f}"
                      f"  {k * n * 2 / 2**20:.0f}/{k * n / 2**20:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
