"""Overlapping the CPU's part of a batch (decoding, resizing, tokenizing) with the device's part of the previous one.

An adapter that can split its work offers ``prepare(batch) -> prepared`` (thread-safe, CPU side) and accepts
``generate(batch, prepared=...)`` / ``option_logprobs(batch, prepared=...)`` (device side), and says how far ahead
to prepare in ``prefetch_batches`` (0: never) and on how many threads in ``preprocess_workers``. `prefetched`
then hands out each batch with a future of its prepared inputs, the next ones already being prepared in the
background. A batch whose preparation failed (an unreadable image) raises from its future, and the run scores
that batch item by item as it would without prefetching, so one bad image fails only its own item.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class LookAhead:
    """Iterate over ``source`` as ``(element, future of fn(element))``, with ``fn`` already running for up to
    ``ahead`` further elements on ``workers`` threads: a bounded queue, in input order.

    At most ``ahead + 1`` results are held at once (the one handed out and those ahead of it). Leaving the loop
    early (an exception, ``break``) cancels what has not started and waits for what has."""

    def __init__(self, source: Iterable[T], fn: Callable[[T], Any], ahead: int = 1, workers: int = 1):
        if ahead < 1 or workers < 1:
            raise ValueError(f"ahead and workers must be >= 1, got {ahead} and {workers}")
        self.source, self.fn, self.ahead, self.workers = source, fn, int(ahead), int(workers)

    def __iter__(self) -> Iterator[tuple[T, Future]]:
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cgeval-prefetch")
        pending: deque[tuple[T, Future]] = deque()
        source = iter(self.source)

        def fill() -> None:
            while len(pending) <= self.ahead:
                try:
                    element = next(source)
                except StopIteration:
                    return
                pending.append((element, pool.submit(self.fn, element)))

        try:
            fill()
            while pending:
                element, future = pending.popleft()
                fill()  # the next ones are prepared while the consumer works on this one
                yield element, future
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _ready(element: T) -> tuple[T, None]:
    return element, None


def prefetched(model: Any, batches: Iterable[T]) -> Iterator[tuple[T, Future | None]]:
    """Each batch with a future of ``model.prepare(batch)`` when the model prefetches, else with None."""
    ahead = int(getattr(model, "prefetch_batches", 0) or 0)
    prepare = getattr(model, "prepare", None)
    if ahead < 1 or not callable(prepare):
        return map(_ready, batches)
    return iter(LookAhead(batches, prepare, ahead=ahead, workers=int(getattr(model, "preprocess_workers", 1) or 1)))
