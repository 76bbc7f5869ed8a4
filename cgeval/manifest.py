"""Provenance of a run: what produced these numbers."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("cgeval", "torch", "transformers", "vllm", "hydra-core", "omegaconf", "numpy", "pandas", "scipy",
            "statsmodels", "pillow", "matplotlib")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _is_cgeval_project(toplevel: Path, package_dir: Path) -> bool:
    """True when ``toplevel`` is cgeval's own source tree: its pyproject.toml names the project cgeval and the
    package folder is its ``cgeval/``."""
    if (toplevel / "cgeval").resolve() != package_dir.resolve():
        return False
    try:
        text = (toplevel / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return re.search(r'(?m)^\[project\][^\[]*?^name\s*=\s*["\']cgeval["\']', text) is not None
    try:
        return tomllib.loads(text).get("project", {}).get("name") == "cgeval"
    except tomllib.TOMLDecodeError:
        return False


def _installed_version() -> str | None:
    try:
        return metadata.version("cgeval")
    except metadata.PackageNotFoundError:
        return None


def git_state(path: Path | None = None) -> dict[str, object]:
    """Which cgeval produced a run: the commit and dirty flag of cgeval's own checkout, or, for an installed
    package (a wheel; a copy inside some other project's git repository), the installed version only.

    ``git rev-parse`` in the package's folder answers for whatever repository contains it, so the commit is
    recorded only when that repository's top level is cgeval's own project (see `_is_cgeval_project`).
    """
    package_dir = Path(path) if path is not None else Path(__file__).resolve().parent
    installed = {"source": "installed", "commit": None, "dirty": None, "version": _installed_version()}
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=package_dir, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        if not top or not _is_cgeval_project(Path(top), package_dir):
            return installed
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=top, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=top,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"source": "git", "commit": commit, "dirty": dirty, "version": installed["version"]}
    except (OSError, subprocess.SubprocessError):
        return installed


def device_info() -> dict[str, object]:
    """The accelerators this process sees (only if torch is already loaded: baselines never import it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"torch_loaded": False, "cuda": None}
    try:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return {"torch_loaded": True, "cuda": torch.version.cuda, "n_gpus": n,
                "gpus": [torch.cuda.get_device_name(i) for i in range(n)],
                "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    except Exception as e:  # noqa: BLE001 - provenance must never stop a run
        return {"torch_loaded": True, "error": f"{type(e).__name__}: {e}"}


def slurm_job_id() -> str | None:
    """The SLURM job this process runs in, as sacct and squeue name it (``<array job>_<task>`` for a task of a job
    array, as a hydra/launcher=slurm sweep of several jobs submits them); None outside SLURM. A requeued job keeps
    its id."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def environment() -> dict[str, object]:
    return {
        "device": device_info(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "slurm_job_id": slurm_job_id(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "packages": package_versions(),
        "git": git_state(),
    }


def current_umask() -> int:
    """The process's file-creation mask (read from /proc where it can be, so that no other thread ever sees a
    changed mask; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: a crash never leaves a
    half-written file. The file gets the mode an ordinary ``open`` would give it (0666 less the umask), not the
    0600 of the temporary file, so that colleagues who may read the folder can read the results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: object) -> None:
    """``data`` as indented JSON, written atomically (see `_write_atomic`)."""
    _write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, text)
