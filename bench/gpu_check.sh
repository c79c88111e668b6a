#!/usr/bin/env bash
# Copyright 2026 spatialvla_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
# GPU latency check of the three real-size presets (config/llava3d_7b_*.yaml), random weights
# in bf16, one 336 px RGB-D camera, 10 denoising steps: prefix, per-step and chunk latency
# (p50/p99) eager, with the denoising loop as one CUDA graph, and with torch.compile of the
# step; peak memory; share of the GPU's bandwidth / FLOP roofline. Under 8 minutes on one
# H200-class GPU: each preset runs in its own process with a time limit, rows print as they
# come, a preset that overruns loses only its own remaining rows.
#
#   bash bench/gpu_check.sh            # on the GPU machine, from a fresh checkout
#   bash bench/gpu_check.sh --tiny     # dry run of the same code at tiny sizes on the CPU
#
# The table goes to stdout and, when $OUT is set, to $OUT/gpu_check.md. PYTHON=... picks the
# interpreter (default: the project venv, made by scripts/setup.sh when missing); it needs a
# CUDA build of torch for the real run.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TINY=0
for arg in "$@"; do
  case "$arg" in
    --tiny|--dry-run) TINY=1 ;;
    -h|--help) sed -n '16,29p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (expected --tiny)" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "[gpu_check] no project venv: running scripts/setup.sh" >&2
    bash "$ROOT/scripts/setup.sh" >&2 || { echo "[gpu_check] setup failed" >&2; exit 1; }
  fi
  PY="$ROOT/.venv/bin/python"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [ "$TINY" = 1 ]; then
  ARGS=(--tiny --device cpu --repeats 3 --threads 1)
  LIMIT=300
else
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "[gpu_check] $PY: torch $("$PY" -c 'import torch; print(torch.__version__)' \
      2>/dev/null) sees no CUDA device; set PYTHON to an interpreter with a CUDA torch" >&2
    exit 1
  fi
  ARGS=(--device cuda --repeats 50)
  LIMIT=150   # per preset; three presets + start-up stay under 8 minutes
fi

TABLE="$(mktemp)"
trap 'rm -f "$TABLE"' EXIT
status=0
keep='.'   # the first preset prints the header lines too
for cfg in config/llava3d_7b_deep_fusion.yaml config/llava3d_7b_late_gemma2b.yaml \
           config/llava3d_7b_late_llama.yaml; do
  start=$SECONDS
  timeout --kill-after=10 "$LIMIT" "$PY" bench/model_latency.py --configs "$cfg" "${ARGS[@]}" \
    | grep --line-buffered -- "$keep" | tee -a "$TABLE"
  rc=${PIPESTATUS[0]}
  keep='^| llava3d'
  if [ "$rc" != 0 ]; then
    status=1
    echo "| $(basename "$cfg") | stopped: exit code $rc after $((SECONDS - start)) s |" \
      | tee -a "$TABLE"
  fi
done
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && cp "$TABLE" "$OUT/gpu_check.md"
fi
exit "$status"
