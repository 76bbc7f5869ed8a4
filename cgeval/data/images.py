"""Checks an image file passes before it may reach a model: where it really lives, how large it is, whether it
decodes. Each failed check is a skip reason the loaders count (`image_problem`, `RootConfinement`).

The pixel cap is read from the file's header (``Image.open`` parses the header and decodes nothing), so an
image bomb (a 12,000 x 12,000 PNG of 140 KB, which Pillow decodes into 432 MB, under its own 179 Mpx limit) is
refused before any pixel is decoded. The default, 50 Mpx, is far above the images of the Med-MAT source datasets
(the largest, full-field mammograms and fundus photographs, are a few thousand pixels a side);
``data.max_image_pixels`` raises it, ``null`` leaves only Pillow's own limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000

# Skip reasons of the checks here (the loaders list them among their own).
TOO_LARGE = "image_too_large"
UNREADABLE = "image_unreadable"
OUTSIDE_ROOTS = "symlink_outside_roots"


def image_problem(path: str | Path, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                  verify: bool = True) -> str | None:
    """None when the image may be used, else the skip reason.

    ``image_too_large``: width x height from the header is above ``max_pixels`` (or above Pillow's own limit,
    which it refuses to open). ``image_unreadable``: Pillow cannot identify the file or, with ``verify``, its
    data is corrupt or truncated. With ``max_pixels=None`` and ``verify=False`` the file is not opened.
    """
    if max_pixels is None and not verify:
        return None
    try:
        with Image.open(path) as im:  # the header only: nothing is decoded yet
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                return TOO_LARGE
            if verify:
                im.verify()
        return None
    except Image.DecompressionBombError:
        return TOO_LARGE
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return UNREADABLE


def check_max_pixels(value: object, where: str = "data.max_image_pixels") -> int | None:
    """``value`` as a pixel cap (a positive integer) or None (no cap beyond Pillow's); anything else is a
    ValueError naming the setting."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where} must be a positive number of pixels or null, got {value!r}")
    return value


class RootConfinement:
    """Whether a path, with every symlink on it followed, stays inside one of the allowed folders.

    A dataset folder symlinked into ``med-mat/`` from elsewhere is followed only when that elsewhere is one of
    the roots (``data.image_roots``); a link to ``/`` cannot make a record address any readable file. Folders
    are resolved once each; a file costs one ``lstat`` (and a resolution only when the file itself is a link).
    """

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots = tuple(dict.fromkeys(os.path.realpath(os.path.expanduser(str(r))) for r in roots))
        self._dirs: dict[str, str] = {}

    def real_path(self, path: str) -> str:
        folder, name = os.path.split(path)
        if folder not in self._dirs:
            self._dirs[folder] = os.path.realpath(folder)
        full = os.path.join(self._dirs[folder], name)
        return os.path.realpath(full) if os.path.islink(full) else full

    def outside(self, path: str) -> str | None:
        """None when ``path`` really lies inside a root; else where it really lies."""
        real = self.real_path(path)
        if any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots):
            return None
        return real
