"""Harness overhead: e2e through pytest-npuperf's measurement vs a bare ``generate`` loop.

Same model, same inputs, same generation arguments; the two are interleaved (A, B, A, B...)
so that slow drifts of the machine hit both alike. Prints the medians and the overhead.

    python benchmarks/overhead.py --batch 1 --new-tokens 120 --pairs 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from pytest_npuperf.devices import resolve_device
from pytest_npuperf.flows.measure import generate_fixed, make_batch, measure_once, warm_up
from pytest_npuperf.model.loader import default_model, load_model
from pytest_npuperf.model.workloads import batch_prompts
from pytest_npuperf.precision import get_precision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="auto")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--workload", default="zh_qa")
    parser.add_argument("--new-tokens", type=int, default=120)
    parser.add_argument("--pairs", type=int, default=30)
    args = parser.parse_args()

    device, _ = resolve_device(args.device)
    model_name = default_model(device.kind, args.model)
    loaded = load_model(model_name, get_precision(args.precision), device.torch_device)
    batch = make_batch(loaded, batch_prompts(args.workload, args.batch), device.torch_device)
    warm_up(loaded, device, batch, args.new_tokens, 2)

    harness, bare = [], []
    for _ in range(args.pairs):
        harness.append(measure_once(loaded, device, batch, args.new_tokens).e2e_s)
        device.synchronize()
        t0 = time.perf_counter()
        generate_fixed(loaded, batch, args.new_tokens)
        device.synchronize()
        bare.append(time.perf_counter() - t0)

    h, b = statistics.median(harness), statistics.median(bare)
    print(f"device {device.kind} ({device.name()}), model {model_name} {args.precision}, batch {args.batch}, "
          f"{args.new_tokens} new tokens, {args.pairs} interleaved pairs, torch threads {torch.get_num_threads()}")
    print(f"bare generate loop : median e2e {b * 1e3:9.2f} ms")
    print(f"through npuperf    : median e2e {h * 1e3:9.2f} ms")
    print(f"harness overhead   : {(h / b - 1) * 100:+.2f}% of the median (target < 2%)")
    paired = [hh / bb - 1 for hh, bb in zip(harness, bare)]
    print(f"median of paired differences: {statistics.median(paired) * 100:+.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
