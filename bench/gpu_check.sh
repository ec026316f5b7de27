#!/usr/bin/env bash
# The default models' loading paths on an NVIDIA GPU (MLX's CUDA backend), with their structural twins
# (tests/twins.py): no float32 casting, mx.fast.rope, the embedder on the GPU stream, reranking on.
# Makes a venv, installs the project with mlx[cuda12] in place of mlx-cpu, builds the twins, runs
# tests/test_defaults_twins.py, then a tiny `rag index` + `rag ask` with the twins. About 2-5 minutes,
# most of it pip. Offline: WHEELHOUSE=/dir/of/wheels (pip --no-index --find-links).
#
#   bench/gpu_check.sh                 # work dir: a fresh mktemp -d (printed)
#   WORK=/tmp/gpu CUDA=cuda13 bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
CUDA=${CUDA:-cuda12}  # the mlx extra: cuda12 (mlx-cuda-12) or cuda13 (mlx-cuda-13)
WORK=${WORK:-$(mktemp -d)}
VENV=$WORK/venv
echo "work dir: $WORK"

pip_install=("$VENV/bin/pip" install -q)
if [ -n "${WHEELHOUSE:-}" ]; then
  pip_install+=(--no-index --find-links "$WHEELHOUSE")
fi

"$PY" -m venv "$VENV"
"${pip_install[@]}" -e '.[test]'
mlx_version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mlx"))')
# mlx-cpu and mlx-cuda-12 ship the same files under mlx/: remove one before installing the other.
"$VENV/bin/pip" uninstall -q -y mlx-cpu
"${pip_install[@]}" "mlx[$CUDA]==$mlx_version"

"$VENV/bin/python" - <<'EOF'
import mlx.core as mx
from ingest.models import mlx_has_gpu, needs_float32

print(f"MLX {mx.__version__}: default device {mx.default_device()}, metal {mx.metal.is_available()}")
assert mlx_has_gpu() and not needs_float32(), "MLX computes on the CPU here: the CUDA backend did not load"
EOF

"$VENV/bin/python" tests/twins.py "$WORK/twins"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_defaults_twins.py

export RAG_HOME=$WORK/home HF_HUB_OFFLINE=1
twins=$WORK/twins
"$VENV/bin/rag" index examples/docs --index "$WORK/index" --embed-model "$twins/Qwen3-Embedding-0.6B-8bit-twin"
# random weights: the answer is gibberish; the point is that every stage runs on the GPU
"$VENV/bin/rag" ask "Where is the spare key hidden?" --index "$WORK/index" \
  --llm "$twins/Qwen3-4B-4bit-twin" --rerank --rerank-model "$twins/Qwen3-Reranker-0.6B-4bit-twin" \
  --max-tokens 16 --allow-general
"$VENV/bin/python" -c 'import mlx.core as mx; print("done on", mx.default_device())'
