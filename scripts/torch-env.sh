# Source this (`source scripts/torch-env.sh`) before building or running with `--features tch`:
# torch-sys finds libtorch in the venv's torch package, and the binary loads it from there.
_stabilize_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_torch_lib="$("$_stabilize_root/.venv-torch/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LIBTORCH_USE_PYTORCH=1
export PATH="$_stabilize_root/.venv-torch/bin:$PATH"
export LD_LIBRARY_PATH="$_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _stabilize_root _torch_lib
