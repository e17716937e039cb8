"""In CI (CI=true) a skipped test fails the run; elsewhere it stays a skip."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env

SKIPPING = """
import pytest

@pytest.fixture
def chromium():
    pytest.skip("/usr/bin/chromium is missing")

def test_needs_a_browser(chromium):
    pass

def test_skips_itself():
    pytest.skip("no PostgreSQL here")
"""


@pytest.mark.parametrize(("ci", "summary"), [("true", "1 failed, 1 error"), ("", "2 skipped")])
def test_a_skip_fails_in_ci(tmp_path: Path, ci: str, summary: str) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"),
            *("-n", "0", "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_skipping.py")),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env={**clean_env(), "CI": ci, "PYTHONPATH": f"{root}:{root / 'src'}"},
        timeout=120,
    )
    assert summary in result.stdout, result.stdout + result.stderr
    assert (result.returncode != 0) == bool(ci)
    if ci:
        assert "skipped in CI (CI=true), which counts as a failure" in result.stdout
        assert "/usr/bin/chromium is missing" in result.stdout
