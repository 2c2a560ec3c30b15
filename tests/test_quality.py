"""The acceptance floor of the default launch, for three seeds (slow: about 4 minutes a seed on 2 cores)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)


@pytest.mark.slow
def test_default_launch_covers_ring8_for_three_seeds(tmp_path):
    script = Path(__file__).parents[1] / "examples" / "studies" / "ring8_seeds.py"
    res = subprocess.run([sys.executable, str(script), "--seeds", "1,2,3", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
