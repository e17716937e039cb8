"""The pinned kernels give the bytes recorded on an AMD EPYC without AVX-512, operation by
operation (tools/kernel_digests.py against tests/data/kernel_digests_amd_epyc_avx2.txt).

On an AMD CPU every digest must match: that is what makes `dvc repro --force` reproduce
`dvc.lock` across AMD machines whatever their vector width (docs/reproducibility.md). On another
vendor's CPU the trained models are known to differ (same page); there the random draws must
still match, and the operations that differ are printed.
"""

import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, clean_env

RECORDED = REPO_ROOT / "tests" / "data" / "kernel_digests_amd_epyc_avx2.txt"
TOOL = REPO_ROOT / "tools" / "kernel_digests.py"


def digests(text: str) -> dict[str, str]:
    """Operation -> digest of a kernel_digests output (comment lines skipped)."""
    rows = [line.rsplit(maxsplit=1) for line in text.splitlines() if not line.startswith("#")]
    return {name.strip(): value for name, value in rows}


def cpu_vendor() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("vendor_id")
        ),
        "",
    )


def test_the_pinned_kernels_give_the_recorded_bytes() -> None:
    result = subprocess.run(
        [sys.executable, str(TOOL)],
        cwd=REPO_ROOT,
        env=clean_env({"PYTHONPATH": str(REPO_ROOT / "src")}),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    here, recorded = digests(result.stdout), digests(RECORDED.read_text(encoding="utf-8"))
    assert list(here) == list(recorded)  # the same operations, in the same order
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in result.stdout and "MKL_CBWR=COMPATIBLE" in result.stdout
    differing = [name for name in recorded if here[name] != recorded[name]]
    print(f"{cpu_vendor()}: operations that differ from the AVX2 recording: {differing or 'none'}")
    assert here["randn"] == recorded["randn"]
    if cpu_vendor() == "AuthenticAMD":
        assert differing == []
