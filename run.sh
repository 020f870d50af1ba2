#!/usr/bin/env bash
# One entry point: sets up a local virtual environment on first use, then runs a verb.
#   bash run.sh demo [HEAD]            bash run.sh test
#   bash run.sh train AttentionLSTM [-o TRAIN.epoch=3 ...]
# `bash run.sh help` lists the verbs; `bash run.sh VERB --help` explains one.
# Runs from any folder: relative paths (flags, -o values, the demo's data/demo and output/demo)
# are relative to the folder you run it from, as with any command; the code comes from here.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
VENV="${VIDEOTAG_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"
PADDLE_VERSION="${PADDLE_VERSION:-3.3.1}"   # CPU wheel on PyPI; GPU wheels of 3.x come from Paddle's own index
PADDLE_GPU_VERSION="${PADDLE_GPU_VERSION:-2.6.2}"   # the newest paddlepaddle-gpu on PyPI

usage() {
  cat <<'USAGE'
usage: bash run.sh VERB [ARGS...]
  setup                      create .venv and install the pinned requirements (done by every verb on first use)
  demo [HEAD] [--extractor_weights W]  a small video library: extract, train HEAD (AttentionLSTM), evaluate, tag
  extract ARGS               stage one: videos -> frame features (python -m extractor --help)
  train MODEL [ARGS]         train a model of videotag/models.py (AttentionLSTM, TSN, ...) on every visible GPU
  eval MODEL --weights W     metrics on the config's TEST list -> <save_dir>/metrics.json
  predict MODEL --weights W  tags of a feature list -> <save_dir>/predictions.jsonl
  tag MODEL --weights W --extractor_weights T   videos -> tags, timelines, report in one resumable pass
  export MODEL --weights W --extractor_weights T   Paddle inference models of backbone and head
  calibrate --video_path V [--precision int8|bf16] [--model M --weights W]   a faster backbone for your videos (int8 calibrated on them, or bf16) and how far its features and tags are from fp32
  convert MODEL --weights W --save F.safetensors   another project's head (VideoTag, PaddleCV zoo, PaddleVideo) in our names
  score --weights W --video_path V   video quality scores (a Quality or QualityHead checkpoint) -> <save_dir>/scores.jsonl; `tag ... --quality_weights W` adds them to the tags
  test [PYTEST ARGS]         the test suite
Each verb passes its remaining arguments on; `bash run.sh VERB --help` shows them. MODEL may also
be given as --model MODEL. The head's weights are --weights, the backbone's --extractor_weights.
Relative paths are relative to the current folder. Exit status: 0 done, 1 some videos failed
(listed in failures.txt), 2 bad input, 3 cannot write the outputs (read-only, full, forbidden).
USAGE
}

gpu_count() {
  if [[ -n "${CUDA_VISIBLE_DEVICES+x}" ]]; then
    local ids="${CUDA_VISIBLE_DEVICES//[[:space:]]/}"
    [[ -z "$ids" || "$ids" == "-1" ]] && { echo 0; return; }
    echo "$ids" | tr ',' '\n' | grep -c .
  elif command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
  else
    echo 0
  fi
}

setup() {
  local stamp="$VENV/.installed"
  local want
  want="$(cat "$HERE/requirements.txt"; echo "gpus=$( [[ $(gpu_count) -gt 0 ]] && echo yes || echo no ) $PADDLE_VERSION $PADDLE_GPU_VERSION")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  echo "setting up $VENV (first run only) ..." >&2
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  if [[ $(gpu_count) -gt 0 ]]; then
    "$VENV/bin/python" -m pip install -q "paddlepaddle-gpu==$PADDLE_GPU_VERSION" >&2
  else
    "$VENV/bin/python" -m pip install -q "paddlepaddle==$PADDLE_VERSION" >&2
  fi
  "$VENV/bin/python" -m pip install -q -r "$HERE/requirements.txt" >&2
  echo "$want" > "$stamp"
}

# Run a python entry point on every visible GPU (paddle.distributed.launch) or in one process.
launch() {
  local n; n=$(gpu_count)
  if [[ $n -gt 1 ]]; then
    exec "$VENV/bin/python" -m paddle.distributed.launch --nproc_per_node="$n" "$@"
  fi
  exec "$VENV/bin/python" "$@"
}

# Every verb with a model takes it first or as --model: `run.sh train MODEL args` runs
# train.py --model_name MODEL args (the model's config from videotag/models.py).
with_model() {
  if [[ $# -gt 0 && "$1" != -* ]]; then
    local model="$1"; shift
    set -- --model_name "$model" "$@"
  fi
  MODEL_ARGS=("$@")
}

verb="${1:-help}"; shift || true
case "$verb" in
  help|-h|--help) usage ;;
  setup) setup ;;
  train|eval|predict|tag|export)
    setup; with_model "$@"
    case "$verb" in
      export) exec "$VENV/bin/python" -m videotag.export "${MODEL_ARGS[@]}" ;;
      tag) launch "$HERE/predict.py" "${MODEL_ARGS[@]}" ;;
      *) launch "$HERE/$verb.py" "${MODEL_ARGS[@]}" ;;
    esac ;;
  convert) setup; with_model "$@"; exec "$VENV/bin/python" -m videotag.convert "${MODEL_ARGS[@]}" ;;
  demo) setup; exec "$VENV/bin/python" -m videotag.demo "$@" ;;
  calibrate) setup; exec "$VENV/bin/python" -m videotag.calibrate "$@" ;;
  score) setup; exec "$VENV/bin/python" -m videotag.score "$@" ;;
  extract) setup; launch "$HERE/extractor/__main__.py" "$@" ;;  # the form multi-node launches run too
  test) setup; cd "$HERE"; exec "$VENV/bin/python" -m pytest -q tests "$@" ;;
  *) echo "unknown verb '$verb'" >&2; usage >&2; exit 2 ;;
esac
