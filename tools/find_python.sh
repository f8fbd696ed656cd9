# Sourced by tools/dist_*.sh and tools/slurm_*.sh (needs TOOLS_DIR): sets
# PYTHON, unless given, to the python of the active virtualenv / conda env,
# else to the repository's .venv made by tools/setup_env.sh, else python.
if [ -z "${PYTHON:-}" ]; then
    if [ -z "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] \
            && [ -x "${TOOLS_DIR}/../.venv/bin/python" ]; then
        PYTHON="${TOOLS_DIR}/../.venv/bin/python"
    else
        PYTHON=python
    fi
fi
