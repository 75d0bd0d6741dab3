#!/usr/bin/env bash
# Run every benchmark (results in benchmarks/results/), then check that the performance appendix
# executes on them. Extra arguments go to bench_optimizers.py (e.g. --epochs 30 for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

"$PY" benchmarks/bench_optimizers.py "$@"
"$PY" benchmarks/bench_ddim_overhead.py
"$PY" benchmarks/bench_samplers.py
"$PY" benchmarks/bench_profiling.py
"$PY" benchmarks/bench_frechet.py
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$(dirname "$PY")/papermill" --cwd notebooks notebooks/performance.ipynb "$out/performance.ipynb"
echo "Benchmarks done; rebuild the book (make book) to show them."
