"""`make demo` runs sample_data/demo.sh: the README's first command must keep working as the commands change."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_runs_and_its_two_routes_agree(tmp_path):
    bin_dir = Path(sys.executable).parent  # the environment running the tests, with its 'dataselect' script
    if not (bin_dir / "dataselect").exists():
        import pytest

        pytest.skip("no 'dataselect' script beside this Python (the package is not installed in it)")
    r = subprocess.run(["bash", str(ROOT / "sample_data" / "demo.sh"), str(bin_dir), str(tmp_path / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "the steps drew the same selection as the one command: True" in r.stdout
