#!/usr/bin/env bash
# One prepared run of part of the suite on an accelerator machine: record a baseline, then run
# again against it (an A/A check on the same hardware), keeping everything the runs produced.
#
#   benchmarks/accelerator_run.sh [DEVICE] [MODEL] [PYTEST SELECTION ...]
#   benchmarks/accelerator_run.sh cuda mistral-7b perf_tests/test_serving.py -k fp16
#   benchmarks/accelerator_run.sh cpu tiny perf_tests/test_serving.py -k "bf16 and load40"  # dry run
#
# Output folder: $OUT (else ./accelerator-run): record.log / compare.log (pytest output),
# record.json / compare.json (results with raw samples), baselines.tar.gz (the baseline files the
# record pass wrote, under their device profile), report.html, env.txt (GPU, driver, versions).
# Wheels in .whl/ (packages missing on a machine with no package index) are installed first.
set -uo pipefail

DEVICE=${1:-cuda}
MODEL=${2:-mistral-7b}
shift $(( $# < 2 ? $# : 2 ))
SELECTION=("$@")
[ ${#SELECTION[@]} -gt 0 ] || SELECTION=(perf_tests/test_serving.py)
OUT=${OUT:-$PWD/accelerator-run}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
    rm -rf /tmp/npuperf-site  # only the wheels carried this time
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/npuperf-site .whl/*.whl \
        || { echo "installing the carried wheels failed" >&2; exit 3; }
    export PYTHONPATH=/tmp/npuperf-site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -c "import importlib.metadata as m; m.version('pytest-npuperf')" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
        || { echo "installing pytest-npuperf failed" >&2; exit 3; }
fi

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    "$PY" -c "import torch, transformers, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'transformers', transformers.__version__)"
} > "$OUT/env.txt" 2>&1

BASE=$(mktemp -d)
COMMON=(-m npu -p no:cacheprovider --npuperf-device="$DEVICE" --npuperf-model="$MODEL" --npuperf-baseline-dir="$BASE")
START=$SECONDS
"$PY" -m pytest "${SELECTION[@]}" "${COMMON[@]}" --npuperf-save-baseline --npuperf-reason="accelerator_run.sh record" \
    --npuperf-results="$OUT/record.json" 2>&1 | tee "$OUT/record.log"
RECORD=$?
echo "record pass: exit $RECORD after $((SECONDS - START)) s" | tee -a "$OUT/record.log"
START=$SECONDS
"$PY" -m pytest "${SELECTION[@]}" "${COMMON[@]}" --npuperf-results="$OUT/compare.json" --npuperf-html="$OUT/report.html" \
    2>&1 | tee "$OUT/compare.log"
COMPARE=$?
echo "compare pass: exit $COMPARE after $((SECONDS - START)) s" | tee -a "$OUT/compare.log"
tar -czf "$OUT/baselines.tar.gz" -C "$BASE" .
rm -rf "$BASE"
exit $(( RECORD != 0 ? RECORD : COMPARE ))
