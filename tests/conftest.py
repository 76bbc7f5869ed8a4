import shutil
from pathlib import Path

import pytest

from cgeval.data.sample import SAMPLE_ROOT

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the embedded Med-MAT sample."""
    dst = tmp_path / "medmat"
    shutil.copytree(SAMPLE_ROOT, dst)
    return dst
