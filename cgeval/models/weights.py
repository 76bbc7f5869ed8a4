"""A cheap fingerprint of a local checkpoint folder, for the resume key.

A hub id with a pinned or resolved revision names its weights; a local folder does not: a model re-trained into
the same folder (the usual loop of a CG experiment: train on an arm, evaluate, train again) keeps its path. The
fingerprint reads each weight and config file's name, size, first and last MiB, so re-trained weights give a
new key while copying the folder elsewhere (another machine, another shard) does not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
CHUNK = 1 << 20


def weights_fingerprint(path: str | Path | None) -> str | None:
    """16 hex characters identifying the weights in a local folder (or file); None for a hub id or no path."""
    if path is None:
        return None
    root = Path(path).expanduser()
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file() and
                       (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json" or p.name.endswith(".index.json")))
    else:
        return None
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with f.open("rb") as fh:
            h.update(fh.read(CHUNK))
            if size > 2 * CHUNK:
                fh.seek(size - CHUNK)
                h.update(fh.read(CHUNK))
            elif size > CHUNK:
                h.update(fh.read())
    return h.hexdigest()[:16]
