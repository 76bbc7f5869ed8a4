"""Item images as the back ends get them: RGB, grey and wide (16/32-bit) images included."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cgeval.models.media import load_rgb, to_rgb


def test_a_16_bit_scan_is_windowed_to_8_bits_not_clipped_white(tmp_path):
    ramp = np.linspace(0, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit CT range
    path = tmp_path / "ct16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # what Pillow reads a 16-bit PNG as
        assert (np.asarray(im.convert("RGB"))[..., 0] == 255).mean() > 0.9  # the clipping this avoids
    rgb = np.asarray(load_rgb(str(path)))
    assert rgb.shape == (64, 64, 3) and (rgb[..., 0] == rgb[..., 1]).all()
    assert rgb.min() == 0 and rgb.max() == 255 and (rgb[..., 0] == 255).mean() < 0.01
    assert np.corrcoef(rgb[..., 0].ravel(), ramp.ravel())[0, 1] > 0.999  # order preserved


@pytest.mark.parametrize("values", [np.full((8, 8), 7, np.int32), np.array([[0.5, np.nan], [1.5, 2.5]], np.float32)])
def test_constant_and_float_images_do_not_fail(values):
    rgb = np.asarray(to_rgb(Image.fromarray(values)))
    assert rgb.shape[:2] == values.shape and rgb.dtype == np.uint8


def test_ordinary_images_are_unchanged(tmp_path):
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert np.array_equal(np.asarray(to_rgb(grey)), np.asarray(grey.convert("RGB")))
    colour = Image.new("RGB", (5, 3), (10, 200, 30))
    assert np.array_equal(np.asarray(to_rgb(colour)), np.asarray(colour))


def test_an_image_pillow_refuses_as_a_bomb_is_an_image_load_error_naming_the_item(tmp_path, monkeypatch):
    from cgeval.data.records import Item
    from cgeval.models.media import ImageLoadError, load_item_images

    path = tmp_path / "big.png"
    Image.new("L", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 is now over twice Pillow's limit
    item = Item(item_id="S03-7", subset=3, dataset=3, modality="CT", area="Lung", task="COVID", image="big.png",
                image_path=str(path), prompt="Q\nA: a\nB: b", question="Q", options=(("A", "a"), ("B", "b")),
                gold="A", answer_text="a")
    with pytest.raises(ImageLoadError, match=r"item S03-7: .*big\.png") as err:
        load_item_images([item])
    assert isinstance(err.value.__cause__.__cause__, Image.DecompressionBombError)
    with pytest.raises(ImageLoadError, match="big.png"):
        load_rgb(str(path))
