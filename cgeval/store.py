"""The on-disk store of a run: predictions files, their cache keys, and what a re-run may reuse.

A row is reused only when its cache key matches: the key hashes everything that determines an answer
(the model's description: id, revision, back end, prompt and chat-template hashes, decoding settings;
the scoring mode; the item's id, image, prompt and options). Rows that do not match are moved aside to
``predictions.stale-N.jsonl``, never reused and never deleted.

A process writing into a run folder holds a lock on it (`locked_run_folder`), so that two runs never write into
one folder at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .config import ShardConfig
from .data.records import Item
from .jsonl import read_jsonl
from .models.base import ModelAdapter
from .scoring import base_item_id

PREDICTIONS_SCHEMA = 1
# Keys of the resolved config that do not change any answer (excluded from the config hash).
_VOLATILE_CONFIG_KEYS = ("shard", "progress", "resume", "hydra")
LOCK_NAME = ".cgeval.lock"


def item_sort_key(item_id: str) -> tuple:
    """Natural order of item ids ("S03-2" before "S03-10"): the canonical order of every predictions file."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", item_id))


def in_shard(item_id: str, shard: ShardConfig) -> bool:
    return zlib.crc32(base_item_id(item_id).encode()) % shard.count == shard.index


def run_key(model: ModelAdapter, mode: str) -> str:
    """Everything about the model side that determines an answer."""
    blob = json.dumps({"model": model.describe(), "name": model.name, "scoring": mode, "schema": PREDICTIONS_SCHEMA},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def item_key(rkey: str, item: Item) -> str:
    blob = json.dumps([rkey, item.item_id, item.image, item.prompt, item.options], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def config_hash(resolved_config: dict | None) -> str | None:
    if resolved_config is None:
        return None
    kept = {k: v for k, v in resolved_config.items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def shard_file(stem: str, suffix: str, shard: ShardConfig) -> str:
    """``<stem><suffix>``, or ``<stem>.shard-III-of-NNN<suffix>`` for one shard of a sharded run."""
    return f"{stem}.shard-{shard.index:03d}-of-{shard.count:03d}{suffix}" if shard.enabled else f"{stem}{suffix}"


def predictions_name(shard: ShardConfig, rotations: bool = False) -> str:
    return shard_file("predictions.rotations" if rotations else "predictions", ".jsonl", shard)


def manifest_name(shard: ShardConfig) -> str:
    return shard_file("manifest", ".json", shard)


def read_rows(path: Path) -> tuple[list[dict], int]:
    """Rows of a predictions file, and how many lines could not be read (a line cut short by a crash).

    Tolerant: every line that is not a JSON object (a blank line too) is dropped and counted, never raised."""
    read = read_jsonl(path, bad_lines="count", skip_blank=False)
    return read.rows, read.n_bad


def collect_cache(out: Path, keys: dict[str, str], stem: str = "predictions") -> tuple[dict[str, dict], Counter]:
    """Finished rows in ``out`` (any ``<stem>*.jsonl`` file, any shard layout, none set aside) whose cache key
    matches: predictions, or a judge's judgements (``stem="judgements"``)."""
    stats: Counter = Counter()
    cache: dict[str, dict] = {}
    for path in sorted(out.glob(f"{stem}*.jsonl")):
        if ".stale-" in path.name:
            continue
        rows, bad = read_rows(path)
        stats["unreadable_lines"] += bad
        for row in rows:
            iid = row.get("item_id")
            if iid in keys and row.get("cache_key") == keys[iid]:
                cache.setdefault(iid, row)
            elif iid in keys:
                stats["stale"] += 1
    stats["reused"] = len(cache)
    return cache, stats


def keep_stale(path: Path, reusable: set[str], keys: dict[str, str]) -> str | None:
    """Move a predictions file aside if it holds rows that will not be reused; return the new name."""
    if not path.exists():
        return None
    rows, bad = read_rows(path)
    if not bad and all(r.get("item_id") in reusable and r.get("cache_key") == keys.get(r.get("item_id"))
                       for r in rows):
        return None
    n = 1
    while (aside := path.with_name(f"{path.stem}.stale-{n}.jsonl")).exists():
        n += 1
    os.replace(path, aside)
    return aside.name




def manifest_status(out: Path, shard: ShardConfig) -> str | None:
    """The ``status`` a run folder's manifest (this shard's) records, or None where there is none."""
    try:
        return json.loads((Path(out) / manifest_name(shard)).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None


class RunFolderLocked(RuntimeError):
    """Another process is writing into this run folder (or into this shard of it)."""


def _hold(path: Path, exclusive: bool, what: str):
    """Open ``path`` and take a non-blocking flock on it; the lock lives as long as the open file."""
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the caller's ExitStack
    try:
        fcntl.flock(f.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise RunFolderLocked(
            f"{what} is in use by another cgeval process"
            + (f" ({holder})" if holder else " (a run, or the shards of a sharded run)")
            + f"; wait for it to finish, or write this run elsewhere (hydra.run.dir=...). Lock file: {path}"
        ) from None
    if exclusive:  # who holds it, for the message another process gets; emptied again on release
        f.seek(0)
        f.truncate()
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {' '.join(sys.argv)[:300]}\n")
        f.flush()
    return f


def _release(f, exclusive: bool) -> None:
    if exclusive:
        f.truncate(0)
    f.close()  # closing the file releases the lock


@contextmanager
def locked_run_folder(out: Path, shard: ShardConfig) -> Iterator[None]:
    """Hold the run folder while this process writes into it; `RunFolderLocked` at once if another holds it.

    An unsharded run takes ``.cgeval.lock`` exclusively. A shard takes it shared (shards of one run write
    their own files side by side) and its own ``.cgeval.shard-III-of-NNN.lock`` exclusively. The locks are
    ``flock`` locks, released by the kernel when the process ends however it ends, so a run killed mid-way
    never blocks the resume that follows it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        whole = not shard.enabled
        f = _hold(out / LOCK_NAME, exclusive=whole, what=f"run folder {out}")
        stack.callback(_release, f, whole)
        if shard.enabled:
            g = _hold(out / shard_file(".cgeval", ".lock", shard), exclusive=True,
                      what=f"shard {shard.index} of {shard.count} in {out}")
            stack.callback(_release, g, True)
        yield
