"""Image columns: read from the dataset's folder only, checked by their bytes, bounded."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from promptdeck.errors import TemplateError
from promptdeck.model.types import Message
from promptdeck.workspace.images import row_images, with_images

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_an_image_column_is_read_relative_to_the_dataset(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(PNG)
    images = row_images({"input": "what is it?", "image": "img/a.png"}, tmp_path)
    assert [(i.media_type, i.source) for i in images] == [("image/png", "img/a.png")]
    assert base64.b64decode(images[0].data) == PNG
    messages = with_images((Message("system", "s"), Message("user", "u")), images)
    assert messages[0].images == () and messages[1].images == images


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("../secret.png", "without '..'"),
        ("/etc/passwd", "without '..'"),
        ("missing.png", "no such image file"),
        ("notes.txt", "not a PNG, JPEG, GIF or WebP image"),
        ("out.png", "outside the dataset's folder"),
    ],
)
def test_a_bad_image_path_names_the_column_and_what_to_fix(
    tmp_path: Path, value: str, says: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("hello")
    (tmp_path / "elsewhere.png").write_bytes(PNG)
    (data / "out.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(TemplateError) as caught:
        row_images({"receipt_image": value}, data)
    assert "column receipt_image" in str(caught.value)
    assert says in str(caught.value)


def test_empty_image_cells_and_other_columns_are_left_alone(tmp_path: Path) -> None:
    assert row_images({"image": "", "input": "x.png"}, tmp_path) == ()
