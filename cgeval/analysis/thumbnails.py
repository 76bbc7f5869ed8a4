"""Small JPEG thumbnails of item images, as data URIs for a self-contained HTML report.

A report never embeds a full-size image: each thumbnail is downscaled to at most ``THUMB_PX`` pixels on its
longer side. Which items get one is the caller's choice (`pick_round_robin`); a byte budget bounds the total, so a
report over a large run keeps a predictable size.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from ..models.media import to_rgb

THUMB_PX = 160
JPEG_QUALITY = 70


def thumbnail_data_uri(path: str | os.PathLike, max_px: int = THUMB_PX, quality: int = JPEG_QUALITY) -> str:
    """The image at ``path`` downscaled to fit ``max_px`` x ``max_px``, as a ``data:image/jpeg;base64,`` URI.

    Grey images stay one channel (a third of the bytes); 16-bit scans are windowed as the models see them."""
    with Image.open(path) as im:
        im.draft("RGB", (max_px, max_px))  # JPEG: decode at a reduced scale straight away
        grey = im.mode in ("L", "LA", "1", "I;16", "I;16L", "I;16B", "I;16N", "I", "F")
        image = to_rgb(im)
    if grey:
        image = image.convert("L")
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pick_round_robin(groups: Sequence[object], candidates: Iterable[int]) -> list[int]:
    """Candidate row indices reordered by taking one from each group in turn (each group in its own order), so
    that a cap on the number of thumbnails leaves every group (composition) some."""
    queues: dict[object, list[int]] = {}
    for i in candidates:
        queues.setdefault(groups[i], []).append(i)
    lists = list(queues.values())
    out: list[int] = []
    depth = 0
    while lists:
        lists = [q for q in lists if depth < len(q)]
        out.extend(q[depth] for q in lists)
        depth += 1
    return out


@dataclass
class Thumbnails:
    """Thumbnails keyed by image path, with what was left out and why."""

    uris: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)  # image path (as in the predictions) -> uris position
    missing: list[str] = field(default_factory=list)  # no such file under the image root
    unreadable: list[str] = field(default_factory=list)  # a file that does not decode as an image
    capped: int = 0  # images that were asked for but left out by the count or byte budget
    n_bytes: int = 0

    def to_note(self) -> dict:
        return {"embedded": len(self.uris), "bytes": self.n_bytes, "missing": len(self.missing),
                "missing_examples": self.missing[:5], "unreadable": len(self.unreadable),
                "unreadable_examples": self.unreadable[:5], "capped": self.capped}


def make_thumbnails(images: Sequence[str], root: str | os.PathLike | None, max_count: int, max_bytes: int,
                    workers: int = 4, max_px: int = THUMB_PX) -> Thumbnails:
    """Thumbnails of ``images`` (paths relative to ``root``, in priority order, duplicates allowed), until
    ``max_count`` images or ``max_bytes`` of data URIs. A missing or undecodable file is listed, not raised."""
    out = Thumbnails()
    wanted = list(dict.fromkeys(p for p in images if p))
    if root is None:
        out.missing = wanted
        return out
    root = os.fspath(root)

    def one(rel: str) -> tuple[str, str | None, str]:
        path = rel if os.path.isabs(rel) else os.path.join(root, rel)
        if not os.path.isfile(path):
            return rel, None, "missing"
        try:
            return rel, thumbnail_data_uri(path, max_px), ""
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
            return rel, None, "unreadable"

    pos = 0
    chunk = max(16, 4 * workers)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # PIL releases the GIL while decoding
        while pos < len(wanted) and len(out.uris) < max_count and out.n_bytes < max_bytes:
            batch = wanted[pos:pos + min(chunk, max_count - len(out.uris))]
            pos += len(batch)
            for rel, uri, why in pool.map(one, batch):
                if uri is None:
                    (out.missing if why == "missing" else out.unreadable).append(rel)
                elif len(out.uris) < max_count and out.n_bytes + len(uri) <= max_bytes:
                    out.index[rel] = len(out.uris)
                    out.uris.append(uri)
                    out.n_bytes += len(uri)
                else:
                    out.capped += 1
    out.capped += len(wanted) - pos
    return out
