"""Named errors at the command line: one clear line on stderr, the traceback only with ``HYDRA_FULL_ERROR=1``
(the variable Hydra itself reads), in every entry point (`cgeval`, ``cgeval report``, ``split``, ``merge``,
``candidates`` and their ``python -m`` forms). An evaluation or a split then exits with status 1 (a run stopped on
an error, `cgeval.run.EXIT_ERROR`); the argparse entries (report, merge, candidates) with status 2.

A named error is one of cgeval's own exception classes for a problem the user can fix (a data root that does
not exist, a model that cannot be loaded, a config value out of range, ...); anything else is a bug and keeps
its traceback. An error wrapped by another one (Hydra's ``instantiate`` wraps whatever a model constructor raises)
is found through its ``__cause__`` chain.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# (module, class name): every exception class that names a problem the user can fix. Only modules already
# imported are looked at (an exception's class is imported once it has been raised), so checking costs nothing.
NAMED_ERRORS: tuple[tuple[str, str], ...] = (
    ("cgeval.config", "ConfigError"),
    ("cgeval.data.loader", "DataError"),  # DataRootNotFound, NoQAFilesFound, MedMatFormatError, splits, mix-in, ...
    ("cgeval.data.compositions", "UnknownMATValue"),
    ("cgeval.data.export", "ExportError"),
    ("cgeval.data.candidates", "CandidatesError"),
    ("cgeval.jsonl", "JsonlLineError"),
    ("cgeval.models.hf", "ModelLoadError"),
    ("cgeval.models.hf", "LetterTokenError"),
    ("cgeval.models.factory", "UnsupportedBackend"),
    ("cgeval.models.base", "UnsupportedScoring"),
    ("cgeval.models.tiny", "UnknownTinyModel"),
    ("cgeval.models.vllm_backend", "VLLMNotInstalled"),
    ("cgeval.models.openai_api", "OpenAINotInstalled"),
    ("cgeval.models.openai_api", "MissingAPIKey"),
    ("cgeval.scoring.circular", "CircularError"),
    ("cgeval.merge", "MergeError"),
    ("cgeval.store", "RunFolderLocked"),
    ("cgeval.analysis.metrics", "PredictionsError"),
    ("cgeval.analysis.stats", "ItemSetMismatch"),
    ("cgeval.analysis.stats", "ScoringMismatch"),
    ("cgeval.analysis.table3", "Table3ConfigError"),
)


def named_error_types() -> tuple[type[BaseException], ...]:
    """The classes of `NAMED_ERRORS` whose modules are imported."""
    # A module started as `python -m cgeval.merge` runs as __main__: its classes live there.
    main = sys.modules.get("__main__")
    main_name = getattr(getattr(main, "__spec__", None), "name", None)
    found = []
    for module, name in NAMED_ERRORS:
        for mod in (sys.modules.get(module), main if main_name == module else None):
            cls = getattr(mod, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)


def find_named(exc: BaseException, also: tuple[type[BaseException], ...] = ()) -> BaseException | None:
    """``exc`` itself or the first exception in its ``__cause__`` chain that is a named error (or one of ``also``)."""
    types = named_error_types() + tuple(also)
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, types):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__
    return None


def full_error() -> bool:
    """True when the user asked for full tracebacks (Hydra's own switch, used by every entry point)."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def one_line(prog: str, exc: BaseException) -> str:
    return f"{prog}: {type(exc).__name__}: {exc}"


def named_error_status(prog: str, exc: Exception, also: tuple[type[BaseException], ...] = ()) -> int:
    """For an ``except Exception as e`` clause of a command's ``main``: print one line for a named error (or one
    of ``also``) and return the exit status 2; anything else, or any error with ``HYDRA_FULL_ERROR=1``, is
    raised on with its traceback."""
    named = find_named(exc, also)
    if named is None or full_error():
        raise exc
    print(one_line(prog, named), file=sys.stderr)
    return 2


@contextmanager
def hydra_task_errors(prog: str, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """The body of a Hydra task (Hydra catches whatever escapes it and prints a traceback, so named errors are
    handled here). Any failure first removes the run folder if the task wrote nothing into it
    (`remove_unstarted_run`); a named error then prints one line and exits with status 1 (`EXIT_ERROR`, as for
    any run stopped on an error). In a sweep it is raised on instead, so that the other jobs still run and Hydra
    reports the failed one at the end."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    try:
        yield
    except Exception as e:
        remove_unstarted_run(hc.runtime.output_dir)
        named = find_named(e, also)
        if named is None or full_error():
            raise
        print(one_line(prog, named), file=sys.stderr)
        if hc.mode == RunMode.MULTIRUN:
            raise
        raise SystemExit(EXIT_ERROR) from None


EXIT_ERROR = 1  # the exit status of a run stopped on an error (cgeval.run.EXIT_ERROR)

# What Hydra writes into a run folder before the task starts: the composed config and the job's log.
_HYDRA_OWN = (".hydra",)
# The run-folder locks (cgeval.store): empty once released, removable only when no process holds them.
_LOCK_FILE = re.compile(r"^\.cgeval(\.shard-\d+-of-\d+)?\.lock$")


def _lock_is_free(path: Path) -> bool:
    try:
        with open(path, "a", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
        return True
    except OSError:  # BlockingIOError: another process holds it
        return False


def remove_unstarted_run(output_dir: str | Path, stop_at: str | Path | None = None) -> bool:
    """Remove a run folder that holds nothing but what Hydra wrote before the run started (``.hydra/`` and
    ``*.log``) and run-folder locks no process holds, then its parents that are left empty, up to ``stop_at``
    (default: the working directory).

    A folder holding anything else (a manifest, predictions of an earlier run being resumed) or a lock another
    process holds (a run that is starting there) is left alone. Returns whether the folder was removed.
    """
    out = Path(output_dir)
    if not out.is_dir():
        return False
    for entry in out.iterdir():
        if entry.name in _HYDRA_OWN and entry.is_dir() and not entry.is_symlink():
            continue
        if entry.suffix == ".log" and entry.is_file() and not entry.is_symlink():
            continue
        if _LOCK_FILE.match(entry.name) and entry.is_file() and not entry.is_symlink() and _lock_is_free(entry):
            continue
        return False
    shutil.rmtree(out)
    stop = Path(stop_at or os.getcwd()).resolve()
    parent = out.resolve().parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()  # only an empty folder: never anything the user put there
        except OSError:
            break
        parent = parent.parent
    return True
