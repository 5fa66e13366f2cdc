#!/usr/bin/env bash
# Build Horovod from its PyPI sdist for this venv's PyTorch, and cache the wheel.
#
# Horovod 0.28.1 (its last release) does not build against current PyTorch as published; two
# corrections make it build:
#   1. C++17 instead of C++14 in CMakeLists.txt and horovod/torch/CMakeLists.txt (PyTorch's headers
#      need C++17);
#   2. CMAKE_POLICY_VERSION_MINIMUM=3.5 (CMake 4 refuses the old cmake_minimum_required versions of
#      the bundled third-party projects).
# It is built with Gloo and PyTorch only (no MPI, TensorFlow, MXNet), --no-build-isolation and
# --no-deps, against the torch/pyspark/pyarrow already in the venv. Its [spark] extra is NOT
# installed: it pins pyarrow<11 and pulls petastorm and another torch.
#
# The wheel is cached outside the clone, keyed by Horovod, torch and Python versions (and the
# GPU operations, if any), so a fresh clone or a new venv reuses it. Nothing is done when the venv
# already imports a Horovod built with the same key.
#
# Environment:
#   PY                     the venv's python (default .venv/bin/python)
#   HOROVOD_VERSION        default 0.28.1
#   CLICKML_WHEEL_CACHE    default $HOME/.cache/clickml/wheels
#   HOROVOD_BUILD_JOBS     parallel compile jobs (default: number of CPUs)
#   HOROVOD_GPU_OPERATIONS e.g. NCCL, for a CUDA build of torch (default: none, CPU/Gloo only)
set -euo pipefail

PY=${PY:-.venv/bin/python}
HOROVOD_VERSION=${HOROVOD_VERSION:-0.28.1}
CACHE=${CLICKML_WHEEL_CACHE:-${HOME}/.cache/clickml/wheels}
JOBS=${HOROVOD_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
GPU_OPS=${HOROVOD_GPU_OPERATIONS:-}

STEP="start"
say() { echo "[horovod] $*"; }
die() { echo "ERROR: make horovod: step '${STEP}' failed: $*" >&2; exit 1; }
trap 'die "command exited with status $? (line ${LINENO})"' ERR

STEP="check the venv"
[ -x "${PY}" ] || die "${PY} not found; run 'make venv' first"
PY=$(cd "$(dirname "${PY}")" && pwd)/$(basename "${PY}")  # absolute: the build runs elsewhere
TORCH_VERSION=$("${PY}" -c 'import torch; print(torch.__version__)' 2>/dev/null) \
  || die "torch does not import in ${PY}; install the 'dl' extra first (make venv)"
PY_TAG=$("${PY}" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
ARCH=$(uname -m)
for mod in pyspark pyarrow pandas cloudpickle psutil yaml packaging; do
  "${PY}" -c "import ${mod}" 2>/dev/null || die "python module '${mod}' is missing from the venv"
done
KEY="horovod-${HOROVOD_VERSION}_torch-${TORCH_VERSION}_${PY_TAG}_${ARCH}${GPU_OPS:+_gpu-${GPU_OPS,,}}"
VENV_DIR=$(cd "$(dirname "${PY}")/.." && pwd)
MARKER="${VENV_DIR}/.horovod-build"
say "build key ${KEY}"

STEP="check the installed horovod"
if [ -f "${MARKER}" ] && [ "$(cat "${MARKER}")" = "${KEY}" ] && "${PY}" - <<PYEOF 2>/dev/null
import horovod, horovod.torch as hvd, horovod.spark
assert horovod.__version__ == "${HOROVOD_VERSION}", horovod.__version__
assert hvd.gloo_built()
PYEOF
then
  say "horovod ${HOROVOD_VERSION} built for torch ${TORCH_VERSION} already imports; nothing to do"
  exit 0
fi

WHEEL_DIR="${CACHE}/${KEY}"
WHEEL=$(ls "${WHEEL_DIR}"/horovod-*.whl 2>/dev/null | head -1 || true)
if [ -z "${WHEEL}" ]; then
  STEP="prepare the build directory"
  mkdir -p "${CACHE}/sdist"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/horovod-build.XXXXXX")
  trap 'rm -rf "${WORK}"' EXIT

  STEP="download the sdist from PyPI"
  SDIST="${CACHE}/sdist/horovod-${HOROVOD_VERSION}.tar.gz"
  if [ ! -f "${SDIST}" ]; then
    say "downloading horovod==${HOROVOD_VERSION} (sdist) from PyPI"
    "${PY}" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
      "horovod==${HOROVOD_VERSION}" -d "${WORK}/download" \
      || die "pip download horovod==${HOROVOD_VERSION} failed (is PyPI reachable?)"
    mv "${WORK}/download/horovod-${HOROVOD_VERSION}.tar.gz" "${SDIST}"
  else
    say "using the cached sdist ${SDIST}"
  fi
  tar -xzf "${SDIST}" -C "${WORK}"
  SRC="${WORK}/horovod-${HOROVOD_VERSION}"

  STEP="apply the corrections (C++17, CMake policy minimum)"
  for f in CMakeLists.txt horovod/torch/CMakeLists.txt; do
    grep -q 'set(CMAKE_CXX_STANDARD 14)' "${SRC}/${f}" \
      || die "${f}: 'set(CMAKE_CXX_STANDARD 14)' not found; the sdist differs from the one these corrections were made for"
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "${SRC}/${f}"
    say "patched ${f}: CMAKE_CXX_STANDARD 14 -> 17"
  done
  export CMAKE_POLICY_VERSION_MINIMUM=3.5

  STEP="compile (CMake, ${JOBS} jobs; several minutes)"
  export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
         HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
  if [ -n "${GPU_OPS}" ]; then export HOROVOD_GPU_OPERATIONS="${GPU_OPS}"; fi
  export MAKEFLAGS="-j${JOBS}"
  LOG="${WORK}/build.log"
  say "compiling with $(cmake --version 2>/dev/null | head -1 || echo 'a pip-installed cmake'); log: ${LOG}"
  start=$(date +%s)
  trap - ERR; set +e
  (cd "${SRC}" && "${PY}" -m pip wheel --verbose --no-build-isolation --no-deps -w "${WORK}/dist" .) \
    > "${LOG}" 2>&1 &
  build_pid=$!
  last=""
  while kill -0 "${build_pid}" 2>/dev/null; do
    sleep 15
    pct=$(grep -o '\[ *[0-9]*%\]' "${LOG}" 2>/dev/null | tail -1 | tr -d '[] ' || true)
    if [ -n "${pct}" ] && [ "${pct}" != "${last}" ]; then
      say "compiling: ${pct} ($(( $(date +%s) - start ))s)"; last="${pct}"
    fi
  done
  wait "${build_pid}"; status=$?
  set -e; trap 'die "command exited with status $? (line ${LINENO})"' ERR
  if [ "${status}" -ne 0 ]; then
    tail -40 "${LOG}" >&2
    cp "${LOG}" "${CACHE}/horovod-build-failed.log" 2>/dev/null || true
    die "pip wheel exited with ${status}; full log: ${CACHE}/horovod-build-failed.log"
  fi
  say "compiled in $(( $(date +%s) - start ))s"

  STEP="store the wheel in the cache"
  mkdir -p "${CACHE}"
  tmp_dir=$(mktemp -d "${CACHE}/.${KEY}.XXXXXX")
  cp "${WORK}"/dist/horovod-*.whl "${tmp_dir}/"
  rm -rf "${WHEEL_DIR}"
  mv "${tmp_dir}" "${WHEEL_DIR}"
  WHEEL=$(ls "${WHEEL_DIR}"/horovod-*.whl | head -1)
  say "cached ${WHEEL}"
else
  say "using the cached wheel ${WHEEL}"
fi

STEP="install the wheel"
"${PY}" -m pip install --quiet --no-deps --force-reinstall "${WHEEL}"

STEP="verify the install"
"${PY}" - <<PYEOF || die "horovod was installed but does not import with PyTorch and Gloo"
import horovod, horovod.torch as hvd, horovod.spark
assert horovod.__version__ == "${HOROVOD_VERSION}", horovod.__version__
assert hvd.gloo_built(), "horovod.torch was built without Gloo"
print("[horovod] horovod", horovod.__version__, "imports: torch + gloo")
PYEOF
echo "${KEY}" > "${MARKER}"
say "done"
