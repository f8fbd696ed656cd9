#!/usr/bin/env bash
# Distributed testing with torchrun (torch.distributed.run).
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
#      PYTHON (default: python of the active virtualenv / conda env; else
#      the repository's .venv of tools/setup_env.sh; else python).
#      On CPU-only machines add
#      --cfg-options env_cfg.dist_cfg.backend=gloo (GPUS = processes).
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=find_python.sh
. "${TOOLS_DIR}/find_python.sh"

set -x
PYTHONPATH="${TOOLS_DIR}/..${PYTHONPATH:+:${PYTHONPATH}}" \
"${PYTHON}" -m torch.distributed.run \
    --nnodes="${NNODES}" \
    --node_rank="${NODE_RANK}" \
    --master_addr="${MASTER_ADDR}" \
    --master_port="${PORT}" \
    --nproc_per_node="${GPUS}" \
    "${TOOLS_DIR}/test.py" "${CONFIG}" "${CHECKPOINT}" --launcher pytorch "${@:4}"
