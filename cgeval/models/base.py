"""The one adapter interface every model back end implements: batch-first, items in, answers out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..data.records import Item


class UnsupportedScoring(NotImplementedError):
    """The adapter cannot score this way (e.g. option likelihoods from a chat API)."""


class BackendUnavailable(RuntimeError):
    """The back end can answer no item now (a server that stopped answering for longer than its outage window,
    credentials it refuses, a model it does not serve): the run stops at once, its finished predictions kept for
    a resume, instead of recording the same failure once per item."""


@dataclass(frozen=True)
class ItemFailure:
    """What an adapter may return in place of one item's reply or scores when that item alone failed (a request
    refused after its retries, an image the server rejects): the run records it as that item's error (counted,
    retried on resume) and keeps the batch's other answers, instead of asking them again one by one."""

    error: BaseException


@runtime_checkable
class ModelAdapter(Protocol):
    """A model the harness can ask questions.

    ``generate`` returns one free-text reply per item; ``option_logprobs`` returns, per item, the
    log-probability of each of *that item's* option letters as the next token. Adapters that cannot
    do one raise `UnsupportedScoring`. An item that failed on its own may come back as an `ItemFailure`
    in its place (raising fails the whole batch, which the run then retries item by item); `BackendUnavailable`
    stops the run. ``describe`` returns what the run manifest should record about the model (hub id, revision,
    prompt template, ...) and what the resume key hashes.

    Optional: ``runtime()`` (settings that change speed, not answers: recorded, not hashed) and
    ``preflight(mode)`` (called once before the first batch, to fail fast on a problem every item would have);
    ``order_keys(items)`` (sort keys the run batches by, before prompt length: items of similar input size
    together); ``prepare(batch)`` with ``prefetch_batches`` / ``preprocess_workers`` (the CPU's part of a batch,
    run ahead on background threads and handed back as ``generate(batch, prepared=...)`` or
    ``option_logprobs(batch, prepared=...)``: `cgeval.models.pipeline`).
    """

    name: str

    def generate(self, batch: Sequence[Item]) -> list[str]: ...

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]: ...

    def describe(self) -> dict: ...


@runtime_checkable
class FitsOnSeen(Protocol):
    """An adapter that learns from the answers of the seen compositions before answering (baselines)."""

    def fit(self, seen: Sequence[Item]) -> None: ...
