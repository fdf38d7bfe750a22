#!/usr/bin/env bash
# A lecture's worth of students on one server: 30 concurrent browser sessions for 60 s, each doing fill-mask with
# its own sentence, changing pages, moving W versus attention's layer slider, trying the lecturer's example
# sentences and switching the gMLP it compares (tests/test_load.py, classroom mode). Prints and writes the report:
#   bash benchmarks/load_classroom.sh [REPORT.json]      (~3 minutes on 2 cores; needs Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
GMLP_LENS_LOAD_CLASSROOM=1 GMLP_LENS_LOAD_SESSIONS="${GMLP_LENS_LOAD_SESSIONS:-30}" \
    GMLP_LENS_LOAD_SECONDS="${GMLP_LENS_LOAD_SECONDS:-60}" GMLP_LENS_LOAD_REPORT="${1:-benchmarks/load_classroom.json}" \
    python -m pytest tests/test_load.py -q -s -p no:cacheprovider
