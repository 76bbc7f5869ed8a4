"""trust_remote_code: false means false. A model folder that ships its own Python (``auto_map``) is refused with a
named error; transformers never asks on the terminal, and the folder's code never runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = {"AutoConfig": "configuration_custom.CustomConfig", "AutoProcessor": "processing_custom.CustomProcessor",
           "AutoModelForImageTextToText": "modeling_custom.CustomModel"}


def custom_code_folder(folder: Path, marker: Path) -> Path:
    """A model folder whose config names an unknown model type and maps every Auto class to its own modules; each
    module, once imported, leaves ``marker`` behind."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "cgeval_custom_test", "architectures": ["CustomModel"], "auto_map": MODULES}))
    for target in MODULES.values():
        module, cls = target.split(".")
        (folder / f"{module}.py").write_text(
            f"import pathlib\npathlib.Path({str(marker)!r}).write_text('the folder code ran')\nclass {cls}:\n    pass\n"
        )
    return folder


@pytest.mark.parametrize("answers", ["y\n" * 5, None])
def test_a_folder_with_custom_code_is_refused_without_a_prompt(tmp_path: Path, answers):
    """Answers waiting on stdin (a user who would type y) or stdin closed: either way the load stops with a
    ModelLoadError that names the custom code, nothing is asked, and none of the folder's modules is imported."""
    marker = tmp_path / "RAN"
    folder = custom_code_folder(tmp_path / "model", marker)
    code = ("from cgeval.models.hf import HFAdapter\n"
            f"HFAdapter(name='custom', path={str(folder)!r}, trust_remote_code=False)\n")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
        input=answers, stdin=None if answers is not None else subprocess.DEVNULL,
        env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Do you wish to run the custom code" not in out
    error = proc.stderr[proc.stderr.rindex("cgeval.models.hf.ModelLoadError"):]
    assert error.startswith("cgeval.models.hf.ModelLoadError: model 'custom'")
    assert "contains custom code" in error and "trust_remote_code" in error
    assert not marker.exists()
