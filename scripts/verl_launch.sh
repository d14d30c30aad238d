#!/usr/bin/env bash
# Run a prmrl recipe (configs/verl/*.yaml) in verl 0.9.1 on N nodes with Ray.
#
# NOT RUN ON GPUS: this script, multi-node Ray, vLLM rollouts and FSDP training were never run
# (README, "prmrl inside verl", says what was). It has only been checked with bash -n.
#
# Roles (one invocation per machine):
#   ROLE=prm     scripts/verl_launch.sh   serve the PRM (prmrl serve-prm) in the foreground, on a
#                                         machine or GPU of its own; the trainers reach it at
#                                         http://PRM_HOST:PRM_PORT
#   ROLE=worker  HEAD_ADDR=10.0.0.1 scripts/verl_launch.sh      join the head's Ray cluster (blocks)
#   ROLE=head    NNODES=2 PRM_HOST=10.0.0.9 scripts/verl_launch.sh [hydra overrides ...]
#                                         start Ray, wait for NNODES nodes, then train
#   ROLE=single  (default) PRM_HOST=... scripts/verl_launch.sh [overrides]   one node, verl starts Ray
#
# Environment (defaults in brackets):
#   RECIPE        configs/verl/<RECIPE>.yaml [qwen2.5-math-1.5b-clip-delta]
#   NNODES        nodes training, this one included [1]
#   GPUS_PER_NODE GPUs per node given to verl [8]; NNODES * GPUS_PER_NODE must be a multiple of 8:
#                 the recipe's batch sizes are for 8 GPUs and are scaled by NNODES*GPUS_PER_NODE/8
#   HEAD_ADDR     the head node's address (ROLE=worker); RAY_PORT [6379]
#   PRM_HOST      the PRM server's host [this host's first address]; PRM_PORT [8000]
#   START_PRM     1: ROLE=head/single also start the PRM server here, in the background, on GPU
#                 PRM_GPU [7]; then give verl the other GPUs (CUDA_VISIBLE_DEVICES, GPUS_PER_NODE)
#   PRM_MODEL     [Qwen/Qwen2.5-Math-PRM-7B]; PRM_FORMAT [qwen_prm]; PRM_DTYPE [bfloat16]
#   DATA_DIR      verl parquet files [runs/verl/data/TASK]; written by prepare-data when missing
#   TASK          prmrl task of the data [math500]
#   PYTHON        a python with verl 0.9.1 (verl[vllm]) and prmrl installed [python3]
#   DRY_RUN       1: print verl's command line, one argument a line, and exit (starts nothing)
# Paths (this repository, DATA_DIR) must be the same on every node: verl's trainer process may
# run on any node of the cluster and reads the data and configs/verl/agent_loops.yaml there.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROLE="${ROLE:-single}"
RECIPE="${RECIPE:-qwen2.5-math-1.5b-clip-delta}"
NNODES="${NNODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
RAY_PORT="${RAY_PORT:-6379}"
PRM_PORT="${PRM_PORT:-8000}"
PRM_HOST="${PRM_HOST:-$(hostname -I 2>/dev/null | awk '{print $1}')}"
PRM_HOST="${PRM_HOST:-127.0.0.1}"
PRM_MODEL="${PRM_MODEL:-Qwen/Qwen2.5-Math-PRM-7B}"
PRM_FORMAT="${PRM_FORMAT:-qwen_prm}"
PRM_DTYPE="${PRM_DTYPE:-bfloat16}"
PRM_GPU="${PRM_GPU:-7}"
TASK="${TASK:-math500}"
DATA_DIR="${DATA_DIR:-$REPO/runs/verl/data/$TASK}"
PYTHON="${PYTHON:-python3}"
CONFIG="$REPO/configs/verl/$RECIPE.yaml"

die() { echo "verl_launch.sh: $*" >&2; exit 2; }

serve_prm() {   # the PRM over HTTP (prmrl's protocol: POST /score_steps, GET /health)
  exec_or_bg="$1"
  cmd=("$PYTHON" -m prmrl.cli serve-prm "$PRM_MODEL" --format "$PRM_FORMAT" --host 0.0.0.0
       --port "$PRM_PORT" --dtype "$PRM_DTYPE" --trust-remote-code)
  if [[ "$exec_or_bg" == exec ]]; then
    exec "${cmd[@]}"
  fi
  CUDA_VISIBLE_DEVICES="$PRM_GPU" "${cmd[@]}" > "$REPO/runs/verl_prm_server.log" 2>&1 &
  PRM_PID=$!
  trap 'kill "$PRM_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://127.0.0.1:$PRM_PORT/health" 2>/dev/null; then
      return 0
    fi
    kill -0 "$PRM_PID" 2>/dev/null || die "the PRM server exited; see runs/verl_prm_server.log"
    sleep 2
  done
  die "the PRM server did not answer /health in 20 minutes"
}

case "$ROLE" in
  prm)
    serve_prm exec ;;
  worker)
    [[ -n "${HEAD_ADDR:-}" ]] || die "ROLE=worker needs HEAD_ADDR (the head node's address)"
    exec ray start --address="$HEAD_ADDR:$RAY_PORT" --num-gpus="$GPUS_PER_NODE" --block ;;
  head|single) ;;
  *) die "ROLE: '$ROLE' is not one of prm, worker, head, single" ;;
esac

[[ -f "$CONFIG" ]] || die "no recipe $CONFIG (RECIPE=$RECIPE)"
(( NNODES >= 1 && GPUS_PER_NODE >= 1 )) || die "NNODES and GPUS_PER_NODE must be >= 1"
(( NNODES * GPUS_PER_NODE % 8 == 0 )) || die "NNODES * GPUS_PER_NODE = $((NNODES * GPUS_PER_NODE)) is not a multiple of 8"
SCALE=$(( NNODES * GPUS_PER_NODE / 8 ))
read -r TRAIN_BATCH MINI_BATCH < <("$PYTHON" - "$CONFIG" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
print(c["data"]["train_batch_size"], c["actor_rollout_ref"]["actor"]["ppo_mini_batch_size"])
EOF
)

ARGS=(-m verl.trainer.main_ppo --config-path "$REPO/configs/verl" --config-name "$RECIPE"
  trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$GPUS_PER_NODE"
  data.train_files="$DATA_DIR/train.parquet" data.val_files="$DATA_DIR/test.parquet"
  data.train_batch_size=$(( TRAIN_BATCH * SCALE ))
  actor_rollout_ref.actor.ppo_mini_batch_size=$(( MINI_BATCH * SCALE ))
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$REPO/configs/verl/agent_loops.yaml"
  reward.reward_kwargs.prmrl.reward.prm_url="http://$PRM_HOST:$PRM_PORT"
  "$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%s\n' "$PYTHON" "${ARGS[@]}"
  exit 0
fi

mkdir -p "$REPO/runs"
if [[ ! -f "$DATA_DIR/train.parquet" || ! -f "$DATA_DIR/test.parquet" ]]; then
  "$PYTHON" -m prmrl.integrations.verl prepare-data --task "$TASK" --out "$DATA_DIR"
fi
if [[ "${START_PRM:-0}" == 1 ]]; then
  serve_prm background
fi

if [[ "$ROLE" == head ]]; then
  ray start --head --port="$RAY_PORT" --num-gpus="$GPUS_PER_NODE"
  export RAY_ADDRESS=auto             # verl's ray.init() joins this cluster instead of starting one
  n=0
  for _ in $(seq 1 300); do
    n=$("$PYTHON" -c "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(1 for x in ray.nodes() if x['Alive']))")
    (( n >= NNODES )) && break
    echo "waiting for Ray nodes: $n of $NNODES"; sleep 5
  done
  (( n >= NNODES )) || die "only $n of $NNODES nodes joined the Ray cluster"
fi

cd "$REPO"
export HYDRA_FULL_ERROR=1
"$PYTHON" "${ARGS[@]}"
