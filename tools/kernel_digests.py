"""Which torch operation rounds differently on this CPU? A digest per operation the stages use.

Each output line is `<operation> <sha256 prefix of its result's bytes>`: random draws, GEMMs,
tanh/sigmoid/exp, long reductions, and for each of nn.RNN, nn.LSTM and nn.GRU the initial
weights, a forward pass, the loss, the gradients and the weights after 1 to 201 Adam steps. All
of it is built from fixed seeds in raw torch on one thread, with the kernels pinned as every
stage pins them (`lstm_vs_rnn.pin_kernels`, before torch). Run it on two machines and diff: the
first line that differs names the first operation whose bytes depend on the CPU.
`tests/data/kernel_digests_amd_epyc_avx2.txt` is its output on an AMD EPYC without AVX-512
(tests/test_kernel_digests.py compares this machine with it).

Usage: `PYTHONPATH=src python tools/kernel_digests.py > my-cpu.txt`, then
`diff my-cpu.txt tests/data/kernel_digests_amd_epyc_avx2.txt` (same torch version);
`--no-pins` shows the unpinned picture.
"""

import sys

if "--no-pins" not in sys.argv:
    import lstm_vs_rnn.pin_kernels  # noqa: F401  (before torch, as in every stage)

# isort: split
import hashlib
import os
import platform
from collections.abc import Iterator

import torch
from torch import nn

PINNED_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")  # torch's only
ARCHITECTURES = ("RNN", "LSTM", "GRU")
HIDDEN_SIZE = 50
# Adam steps after which the weights are digested (the first step is digested on its own).
DIGESTED_STEPS = (0, 9, 99, 199)


def digest(*tensors: torch.Tensor) -> str:
    """The first 16 hex digits of the sha256 of the tensors' bytes, in order."""
    hashed = hashlib.sha256()
    for tensor in tensors:
        hashed.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return hashed.hexdigest()[:16]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def header() -> list[str]:
    """Comment lines: the CPU, torch, the capability torch runs at and the pins in force."""
    pins = " ".join(f"{name}={os.environ.get(name, '')}" for name in PINNED_VARIABLES)
    capability = torch.backends.cpu.get_cpu_capability()
    return [
        f"# cpu: {cpu_name()}; torch {torch.__version__}; capability {capability}",
        f"# env: {pins}",
        f"# python {platform.python_version()}",
    ]


def primitive_digests(generator: torch.Generator) -> Iterator[tuple[str, str]]:
    """Random draws, matrix products, activations and reductions of 1e5 values."""
    a = torch.randn(64, 51, generator=generator)
    b = torch.randn(51, 50, generator=generator)
    c = torch.randn(50, generator=generator)
    yield "randn", digest(a, b, c)
    yield "mm 64x51 @ 51x50", digest(a @ b)
    yield "addmm", digest(torch.addmm(c, a, b))
    big_a = torch.randn(640, 200, generator=generator)
    big_b = torch.randn(200, 101, generator=generator)
    yield "mm 640x200 @ 200x101", digest(big_a @ big_b)
    x = torch.randn(100_000, generator=generator)
    yield "tanh", digest(torch.tanh(x))
    yield "sigmoid", digest(torch.sigmoid(x))
    yield "exp", digest(torch.exp(x / 10))
    yield "sum 1e5", digest(x.sum())
    yield "mean of squares 1e5", digest((x * x).mean())


def training_digests(
    arch: str, windows: torch.Tensor, targets: torch.Tensor
) -> Iterator[tuple[str, str]]:
    """One recurrent layer (batch of windows (64, 20, 1), targets (64, 1)) with a linear head:
    its weights, forward, loss, gradients, then Adam at lr 0.01 for 201 steps."""
    torch.manual_seed(42)
    layer = getattr(nn, arch)(input_size=1, hidden_size=HIDDEN_SIZE, batch_first=True)
    head = nn.Linear(HIDDEN_SIZE, 1)
    params = [*layer.parameters(), *head.parameters()]
    yield f"{arch} init", digest(*params)

    def loss_of_batch() -> torch.Tensor:
        out, _ = layer(windows)
        return nn.functional.mse_loss(head(out[:, -1, :]), targets)

    out, _ = layer(windows)
    yield f"{arch} forward", digest(out)
    loss = nn.functional.mse_loss(head(out[:, -1, :]), targets)
    yield f"{arch} loss", digest(loss)
    loss.backward()
    yield f"{arch} grads", digest(*[param.grad for param in params])
    optimizer = torch.optim.Adam(params, lr=0.01)
    optimizer.step()
    yield f"{arch} after 1 Adam step", digest(*params)
    for step in range(max(DIGESTED_STEPS) + 1):
        optimizer.zero_grad()
        loss_of_batch().backward()
        optimizer.step()
        if step in DIGESTED_STEPS:
            yield f"{arch} after {step + 2} Adam steps", digest(*params)


def all_digests() -> Iterator[tuple[str, str]]:
    """Every operation's digest, in a fixed order, from generator seed 0."""
    generator = torch.Generator().manual_seed(0)
    yield from primitive_digests(generator)
    windows = torch.randn(64, 20, 1, generator=generator)
    targets = torch.randn(64, 1, generator=generator)
    for arch in ARCHITECTURES:
        yield from training_digests(arch, windows, targets)


def main() -> None:
    torch.set_num_threads(1)
    for line in header():
        print(line)
    for name, value in all_digests():
        print(f"{name:<34} {value}")


if __name__ == "__main__":
    main()
