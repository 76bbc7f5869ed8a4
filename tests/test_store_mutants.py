"""cgeval.store unit by unit: file names, key formats, what a resume reuses or moves aside, and the run-folder lock.

Expected values are written out by hand (file names, hash inputs as literal JSON, counts of a small hand-made
folder), so that a change to any name, key or count a run writes to disk fails here.
"""

import hashlib
import json
import os
from pathlib import Path

import pytest

from cgeval.config import ShardConfig
from cgeval.data.records import Item
from cgeval.models.mock import MockModel
from cgeval.store import (
    LOCK_NAME,
    RunFolderLocked,
    collect_cache,
    config_hash,
    in_shard,
    item_key,
    item_sort_key,
    keep_stale,
    locked_run_folder,
    manifest_name,
    manifest_status,
    predictions_name,
    read_rows,
    run_key,
    shard_file,
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _row(iid: str, key: str, **extra) -> str:
    return json.dumps({"item_id": iid, "cache_key": key, **extra})


# ------------------------------------------------------------------ names and keys


def test_item_sort_key_is_natural_order():
    assert item_sort_key("S03-10") == ("S", 3, "-", 10, "")
    assert item_sort_key("S03-1@r2") == ("S", 3, "-", 1, "@r", 2, "")
    ids = ["S03-10", "S28-1", "S03-2", "S03-1"]
    assert sorted(ids, key=item_sort_key) == ["S03-1", "S03-2", "S03-10", "S28-1"]


def test_shard_file_names():
    assert shard_file("predictions", ".jsonl", ShardConfig()) == "predictions.jsonl"
    assert shard_file("predictions", ".jsonl", ShardConfig(2, 12)) == "predictions.shard-002-of-012.jsonl"
    assert predictions_name(ShardConfig()) == "predictions.jsonl"
    assert predictions_name(ShardConfig(), rotations=True) == "predictions.rotations.jsonl"
    assert predictions_name(ShardConfig(1, 3), rotations=True) == "predictions.rotations.shard-001-of-003.jsonl"
    assert predictions_name(ShardConfig(0, 2)) == "predictions.shard-000-of-002.jsonl"
    assert manifest_name(ShardConfig()) == "manifest.json"
    assert manifest_name(ShardConfig(1, 2)) == "manifest.shard-001-of-002.json"


def test_in_shard_by_crc32_of_the_base_id():
    # crc32("S22-1") = 3047692551 -> 0 mod 3; crc32("S03-1") = 509852603 -> 2 mod 3 and 1 mod 2
    assert in_shard("S22-1", ShardConfig(0, 3)) and not in_shard("S22-1", ShardConfig(2, 3))
    assert in_shard("S03-1", ShardConfig(2, 3)) and not in_shard("S03-1", ShardConfig(0, 3))
    assert in_shard("S03-1", ShardConfig(1, 2)) and not in_shard("S03-1", ShardConfig(0, 2))
    # a rotation of an item lands in its item's shard
    assert in_shard("S03-1@r3", ShardConfig(2, 3)) and not in_shard("S03-1@r3", ShardConfig(1, 3))
    assert in_shard("S03-1", ShardConfig())  # one shard holds everything


def test_run_key_hashes_model_name_mode_and_schema():
    model = MockModel(name="m1", reply="first")
    blob = '{"model": {"kind": "mock", "reply": "first"}, "name": "m1", "schema": 1, "scoring": "generate"}'
    assert run_key(model, "generate") == _sha(blob)
    assert run_key(model, "likelihood") != run_key(model, "generate")
    assert run_key(MockModel(name="m2", reply="first"), "generate") != run_key(model, "generate")


def _item(**kw) -> Item:
    base = dict(item_id="S03-1", subset=3, dataset=3, modality="CT", area="Lung", task="COVID",
                image="med-mat/x/é.png", image_path="/r/med-mat/x/é.png", prompt="Q é\nA: a\nB: b", question="Q é",
                options=(("A", "a"), ("B", "b")), gold="A", answer_text="a")
    base.update(kw)
    return Item(**base)


def test_item_key_hashes_run_key_and_what_the_model_sees():
    blob = '["rk", "S03-1", "med-mat/x/é.png", "Q é\\nA: a\\nB: b", [["A", "a"], ["B", "b"]]]'
    assert item_key("rk", _item()) == _sha(blob)[:24]
    assert len(item_key("rk", _item())) == 24
    # the gold answer and the caption are not what the model sees: they leave the key alone
    assert item_key("rk", _item(gold="B", answer_text="b", caption="c")) == item_key("rk", _item())


def test_config_hash_leaves_out_the_volatile_keys():
    assert config_hash(None) is None
    assert config_hash({"a": 1, "b": [2]}) == _sha('{"a": 1, "b": [2]}')
    volatile = {"shard": {"index": 1}, "progress": True, "resume": False, "hydra": {"x": 1}}
    assert config_hash({"a": 1, "b": [2], **volatile}) == _sha('{"a": 1, "b": [2]}')
    assert config_hash({"a": 1, "seed": 2}) == _sha('{"a": 1, "seed": 2}')


# ------------------------------------------------------------------ reading, reuse, stale files


def test_read_rows_counts_blank_and_cut_lines(tmp_path):
    path = _write(tmp_path / "p.jsonl", _row("S03-1", "k1"), "", "[1, 2]", '{"item_id": "S03-2", "cache')
    rows, bad = read_rows(path)
    assert rows == [{"item_id": "S03-1", "cache_key": "k1"}] and bad == 3


def test_collect_cache_reuses_matching_rows_and_counts_the_rest(tmp_path):
    keys = {"S03-1": "k1", "S03-2": "k2", "S03-3": "k3"}
    _write(tmp_path / "predictions.jsonl", _row("S03-1", "k1", pred="A"), _row("S03-2", "old"),
           _row("S99-9", "k9"), _row("S99-8", "k8"), _row("S99-7", "k7"), _row("S03-3", "older"), '{"item_id": "S03-3", "cache_')
    _write(tmp_path / "predictions.shard-000-of-002.jsonl", _row("S03-1", "k1", pred="B"), _row("S03-3", "k3"),
           "")
    _write(tmp_path / "predictions.stale-1.jsonl", _row("S03-2", "k2"), "not json")
    _write(tmp_path / "other.jsonl", _row("S03-2", "k2"))
    cache, stats = collect_cache(tmp_path, keys)
    # the first file in name order wins an item both hold; stale files and other names are not read
    assert cache == {"S03-1": {"item_id": "S03-1", "cache_key": "k1", "pred": "A"},
                     "S03-3": {"item_id": "S03-3", "cache_key": "k3"}}
    # stale: rows of this run's items under another key (S03-2, S03-3); rows of other items are not counted
    assert stats == {"reused": 2, "stale": 2, "unreadable_lines": 2}


def test_collect_cache_of_an_empty_folder(tmp_path):
    cache, stats = collect_cache(tmp_path, {"S03-1": "k1"})
    assert cache == {} and stats["reused"] == 0 and stats["stale"] == 0 and stats["unreadable_lines"] == 0


def test_keep_stale_moves_aside_only_files_with_rows_not_reused(tmp_path):
    keys = {"S03-1": "k1", "S03-2": "k2"}
    path = tmp_path / "predictions.jsonl"
    assert keep_stale(path, {"S03-1"}, keys) is None and not path.exists()
    _write(path, _row("S03-1", "k1"), _row("S03-2", "k2"))
    assert keep_stale(path, {"S03-1", "S03-2"}, keys) is None and path.exists()  # everything reused: kept
    content = path.read_text()
    assert keep_stale(path, {"S03-1"}, keys) == "predictions.stale-1.jsonl"  # S03-2 not reused
    assert not path.exists() and (tmp_path / "predictions.stale-1.jsonl").read_text() == content
    _write(path, _row("S03-1", "other"))  # reusable id, but another key
    assert keep_stale(path, {"S03-1"}, keys) == "predictions.stale-2.jsonl"
    _write(path, _row("S03-1", "k1"), "cut")  # an unreadable line: moved aside, never dropped
    assert keep_stale(path, {"S03-1"}, keys) == "predictions.stale-3.jsonl"
    shard = _write(tmp_path / "predictions.shard-000-of-002.jsonl", _row("S03-9", "k9"))
    assert keep_stale(shard, set(), keys) == "predictions.shard-000-of-002.stale-1.jsonl"


def test_manifest_status(tmp_path):
    assert manifest_status(tmp_path, ShardConfig()) is None  # no manifest
    (tmp_path / "manifest.json").write_text('{"status": "running"}')
    assert manifest_status(tmp_path, ShardConfig()) == "running"
    assert manifest_status(str(tmp_path), ShardConfig(1, 2)) is None
    (tmp_path / "manifest.shard-001-of-002.json").write_text('{"status": "complete"}')
    assert manifest_status(tmp_path, ShardConfig(1, 2)) == "complete"
    (tmp_path / "manifest.json").write_text('{"status": "compl')  # cut short
    assert manifest_status(tmp_path, ShardConfig()) is None
    (tmp_path / "manifest.json").write_text('["status"]')  # not an object
    assert manifest_status(tmp_path, ShardConfig()) is None
    (tmp_path / "manifest.json").write_text('{"other": 1}')
    assert manifest_status(tmp_path, ShardConfig()) is None


# ------------------------------------------------------------------ the run-folder lock


def test_unsharded_lock_names_its_holder_and_empties_on_release(tmp_path):
    out = tmp_path / "new" / "run"
    with locked_run_folder(out, ShardConfig()):
        holder = (out / LOCK_NAME).read_text()
        assert holder.startswith(f"pid {os.getpid()} on ") and " since " in holder and holder.endswith("\n")
        with pytest.raises(RunFolderLocked) as e:
            with locked_run_folder(out, ShardConfig()):
                pass
        msg = str(e.value)
        assert msg.startswith(f"run folder {out} is in use by another cgeval process (pid {os.getpid()} on ")
        assert msg.endswith(f"; wait for it to finish, or write this run elsewhere (hydra.run.dir=...). "
                            f"Lock file: {out / LOCK_NAME}")
    assert (out / LOCK_NAME).read_text() == ""
    with locked_run_folder(out, ShardConfig()):  # released: taken again at once
        pass


def test_shards_share_the_folder_but_not_a_shard(tmp_path):
    a, b = ShardConfig(0, 2), ShardConfig(1, 2)
    with locked_run_folder(tmp_path, a), locked_run_folder(tmp_path, b):
        assert (tmp_path / LOCK_NAME).read_text() == ""  # a shared holder writes no name
        holder = (tmp_path / ".cgeval.shard-000-of-002.lock").read_text()
        assert holder.startswith(f"pid {os.getpid()} on ")
        with pytest.raises(RunFolderLocked) as e:
            with locked_run_folder(tmp_path, ShardConfig()):
                pass
        assert str(e.value) == (
            f"run folder {tmp_path} is in use by another cgeval process (a run, or the shards of a sharded run); "
            f"wait for it to finish, or write this run elsewhere (hydra.run.dir=...). Lock file: {tmp_path / LOCK_NAME}"
        )
        with pytest.raises(RunFolderLocked, match=r"^shard 0 of 2 in .* \(pid "):
            with locked_run_folder(tmp_path, ShardConfig(0, 2)):
                pass
    assert (tmp_path / ".cgeval.shard-000-of-002.lock").read_text() == ""
    with locked_run_folder(tmp_path, ShardConfig()):  # all released
        with pytest.raises(RunFolderLocked, match="run folder"):
            with locked_run_folder(tmp_path, ShardConfig(1, 2)):
                pass


def test_the_lock_file_is_named_and_rewritten_with_its_holder(tmp_path, monkeypatch):
    import re
    import socket
    import sys

    assert LOCK_NAME == ".cgeval.lock"
    (tmp_path / ".cgeval.lock").write_text("left by a killed run\n")
    monkeypatch.setattr(sys, "argv", ["cgeval"] + ["x" * 50] * 10)
    with locked_run_folder(tmp_path, ShardConfig()):
        holder = (tmp_path / ".cgeval.lock").read_text()
    argv = " ".join(["cgeval"] + ["x" * 50] * 10)[:300]
    assert re.fullmatch(rf"pid {os.getpid()} on {re.escape(socket.gethostname())} since "
                        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00: {argv}\n", holder), holder


def test_collect_cache_reads_every_predictions_file_but_the_stale_ones(tmp_path):
    # a stale file sorts between the shard files and any later name: it is passed over, not the end of the reading
    _write(tmp_path / "predictions.stale-1.jsonl", _row("S03-1", "k1"))
    _write(tmp_path / "predictions.x.jsonl", _row("S03-1", "k1", pred="C"))
    cache, stats = collect_cache(tmp_path, {"S03-1": "k1"})
    assert cache == {"S03-1": {"item_id": "S03-1", "cache_key": "k1", "pred": "C"}} and stats["reused"] == 1


def test_keys_hash_values_json_cannot_write_as_their_text():
    class Model:
        name = "m"

        def describe(self):
            return {"path": Path("/models/x")}

    blob = '{"model": {"path": "/models/x"}, "name": "m", "schema": 1, "scoring": "generate"}'
    assert run_key(Model(), "generate") == _sha(blob)
    assert config_hash({"b": Path("/d"), "a": 2}) == _sha('{"a": 2, "b": "/d"}')  # keys sorted
