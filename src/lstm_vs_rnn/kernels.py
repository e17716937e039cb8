"""The CPU kernels torch's math libraries may use, pinned so that CPUs of one vendor with
different instruction sets write the same bytes (measured on two AMD EPYC machines, AVX-512 and
AVX2 only); an Intel and an AMD CPU still differ (docs/reproducibility.md).

Stage scripts pin them by importing `lstm_vs_rnn.pin_kernels` before anything else: the
libraries read the variables when torch (or NumPy) loads. They pick kernels by the CPU's instruction
set, and the picks round differently: on an Intel Xeon with AVX-512, each of these changed the
trained weights (default params; `make bench` prints what the pins cost):

* `ONEDNN_MAX_CPU_ISA` (oneDNN runs `nn.LSTM`): AVX2 instead of AVX-512 changed the LSTM's
  weights, not the RNN's. AVX2 is the level every x86-64 server of the last decade has, AMD
  included (oneDNN dispatches on CPU features, not vendor).
* `MKL_CBWR` (MKL's GEMMs, used by `nn.RNN` and the linear head): any branch changed both
  models. MKL's own documentation: branches other than AUTO and COMPATIBLE work on Intel
  processors only, so COMPATIBLE (SSE2) is the one branch that gives AMD and Intel one result.
* `ATEN_CPU_CAPABILITY` (ATen's vectorised element-wise ops and reductions): AVX2 instead of
  AVX-512 changed nothing at default params, but the vector width decides how reductions are
  summed, so it is pinned too, at no measurable cost.
* `OPENBLAS_CORETYPE` (the OpenBLAS that NumPy ships, used by the least-squares AR baseline):
  its SkylakeX (AVX-512) and Haswell (AVX2) kernels give AR forecasts that differ in the last
  digits (measured on an AMD EPYC with AVX-512: the AR weights' bytes, metrics.json and
  horizon.csv changed), so NumPy is pinned to Haswell, the AVX2 level of the other pins.

The values are forced, not defaults: a setting inherited from the shell would silently change
the bytes.
"""

import os
import sys

PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE",
    "OPENBLAS_CORETYPE": "Haswell",
}
# Run tags that record the settings, and the level ATen really runs at, in every stage's run.
TAG_PREFIX = "kernels."


def pin_cpu_kernels() -> None:
    """Set the variables; a torch already loaded would have read them, which is a bug here."""
    if "torch" in sys.modules:
        raise RuntimeError("lstm_vs_rnn.kernels must be imported before torch")
    os.environ.update(PINNED)


def kernel_tags() -> dict[str, str]:
    """The settings in force in this process, and ATen's level if torch is loaded."""
    tags = {f"{TAG_PREFIX}{key}": os.environ.get(key, "") for key in PINNED}
    torch = sys.modules.get("torch")
    if torch is not None:
        tags[f"{TAG_PREFIX}torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return tags
