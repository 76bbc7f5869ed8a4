"""Item images as the back ends want them: RGB PIL images, optionally padded to a square.

Grey images (CT, X-ray, MRI) become three equal channels; 16- and 32-bit ones are windowed to 8 bits first
(`to_rgb`).

``pad_to_square`` reproduces LLaVA's ``expand2square``: the image is centred on a square canvas filled with the
vision tower's mean colour (CLIP's mean by default), so the processor's resize does not distort it and its
centre crop does not cut anything off.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from ..data.records import Item
from .prompt import is_text_only

# CLIP's image_mean (0.48145466, 0.4578275, 0.40821073) * 255, truncated as LLaVA's expand2square does.
CLIP_MEAN_FILL = (122, 116, 104)


class ImageLoadError(RuntimeError):
    """An item's image cannot be opened or decoded."""


def expand_to_square(image: Image.Image, fill: tuple[int, int, int] = CLIP_MEAN_FILL) -> Image.Image:
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


# Modes with more than 8 bits per pixel (16-bit PNG / TIFF scans, 32-bit integer or float images).
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for the vision tower. A 16-bit or 32-bit grey image is first windowed to its own min-max range in 8
    bits: Pillow's ``convert`` clips those values at 255, which turns a typical 12-bit CT or X-ray white."""
    if image.mode in WIDE_MODES:
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        scaled = np.zeros_like(values) if hi <= lo else (np.nan_to_num(values, nan=lo) - lo) / (hi - lo) * 255
        image = Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def load_rgb(path: str, pad_to_square: bool = False,
             fill: tuple[int, int, int] = CLIP_MEAN_FILL) -> Image.Image:
    """The image at ``path`` as RGB. One above Pillow's own pixel limit (an image bomb the loader's header check
    did not see, e.g. with data.max_image_pixels=null, or a file replaced since) is an `ImageLoadError`, like
    any other image that cannot be loaded."""
    try:
        with Image.open(path) as im:
            image = to_rgb(im)
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: {e}") from e
    return expand_to_square(image, fill) if pad_to_square else image


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding it; (0, 0) for a file that cannot be opened (it
    fails later, when its item is asked)."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return (0, 0)


def load_item_images(items: Sequence[Item], pad_to_square: bool = False, workers: int = 8,
                     fill: tuple[int, int, int] = CLIP_MEAN_FILL) -> list[Image.Image | None]:
    """The items' images in order, decoded on a few threads (PIL releases the GIL while decoding); items that
    share an image file share one decoded image (read-only for every back end); None for a text-only item
    (`cgeval.models.prompt.is_text_only`)."""

    def one(item: Item) -> Image.Image | None:
        if is_text_only(item):
            return None
        try:
            return load_rgb(item.image_path, pad_to_square, fill)
        except ImageLoadError as e:
            raise ImageLoadError(f"cannot load the image of item {item.item_id}: {e}") from e
        except (OSError, ValueError) as e:
            raise ImageLoadError(f"cannot load the image of item {item.item_id}: {item.image_path}: {e}") from e

    # Each image file is decoded once, however many items of the batch show it (the rotations of a circular run).
    def key(item: Item) -> tuple[bool, str]:
        return is_text_only(item), item.image_path

    first: dict[tuple[bool, str], Item] = {}
    for it in items:
        first.setdefault(key(it), it)
    unique = list(first.values())
    if workers <= 1 or len(unique) <= 1:
        decoded = [one(it) for it in unique]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(unique))) as pool:
            decoded = list(pool.map(one, unique))
    by_key = {key(it): im for it, im in zip(unique, decoded)}
    return [by_key[key(it)] for it in items]


def image_uuid(path: str, pad_to_square: bool = False) -> str:
    """An id for the image a back end is given from ``path``: the file's path, size and modification time, and
    whether it was padded to a square (the same file read the same way in one process gives the same image)."""
    import hashlib
    import os

    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{int(bool(pad_to_square))}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]
