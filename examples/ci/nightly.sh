#!/usr/bin/env bash
# Nightly perf gate for any CI system (Jenkins, GitLab, cron): exits non-zero when a test regressed.
# Usage: examples/ci/nightly.sh [extra pytest arguments]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

# CANN <= 8.3 layout; CANN >= 8.5 installs /usr/local/Ascend/cann/set_env.sh instead.
for env in /usr/local/Ascend/ascend-toolkit/set_env.sh /usr/local/Ascend/cann/set_env.sh; do
  if [ -f "$env" ]; then source "$env"; break; fi
done

if [ ! -d .venv ]; then
  python3 -m venv .venv
  .venv/bin/pip install torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu
  .venv/bin/pip install torch-npu==2.5.1
  .venv/bin/pip install -e ".[torch25]"  # the extra of torch_npu 2.5.1's torch line (README, "On an Ascend NPU")
fi
. .venv/bin/activate

out="npuperf-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
status=0
pytest perf_tests -m npu -v --npuperf-device npu --npuperf-strict --npuperf-confirm \
  --npuperf-results "$out/results.json" --npuperf-html "$out/report.html" \
  --npuperf-markdown "$out/summary.md" --junitxml "$out/junit.xml" "$@" || status=$?
echo "reports in $out/"
exit "$status"
