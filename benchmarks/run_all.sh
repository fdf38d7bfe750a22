#!/usr/bin/env bash
# Run every benchmark with its defaults and keep the output: bash benchmarks/run_all.sh [LOG]
# Needs: pip install -r benchmarks/requirements-bench.txt (the peer), and for the page timings Debian's chromium.
set -uo pipefail
cd "$(dirname "$0")/.."
log="${1:-benchmarks/latest.txt}"
{
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    python benchmarks/bench_train.py --compile
    python benchmarks/bench_precision.py
    python benchmarks/bench_attention.py
    python benchmarks/bench_inference.py
    python benchmarks/bench_dashboard.py
    if [ -f dashboard/app.py ] && [ -x /usr/bin/chromium ]; then python benchmarks/bench_pages.py; fi
    echo "## load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | grep -v -e "UserWarning" -e "warnings.warn" | tee "$log"
