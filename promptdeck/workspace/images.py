"""Images sent with a prompt: from a dataset column, or uploaded in the Playground.

A dataset column named `image`, or ending in `_image`, holds an image file's path relative
to the dataset's folder (e.g. `images/receipt-17.png`). The image goes with the prompt's
last user message, as an image part, to providers that take images; the column's text is
still a template variable (a prompt may mention the file name).

A path in a dataset is untrusted text: it must stay inside the dataset's folder (no `..`,
no absolute paths, no symlink out), the file must be at most MAX_IMAGE_BYTES, and its first
bytes must say PNG, JPEG, GIF or WebP. Anything else is a TemplateError naming the row's
column and what to fix; the cell fails, the run goes on.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path

from promptdeck.errors import TemplateError
from promptdeck.model.types import Image, Message

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # what OpenAI and Anthropic accept per image, roughly
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def is_image_column(name: str) -> bool:
    return name == "image" or name.endswith("_image")


def media_type(data: bytes) -> str | None:
    """The image type the bytes start with, or None when they are no image PromptDeck sends."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_from_bytes(data: bytes, source: str) -> Image:
    """An uploaded image; TemplateError if it is too large or not an image."""
    if len(data) > MAX_IMAGE_BYTES:
        raise TemplateError(
            f"{source} is {len(data) / 1e6:.1f} MB; images may be at most "
            f"{MAX_IMAGE_BYTES / 1e6:.0f} MB"
        )
    kind = media_type(data)
    if kind is None:
        raise TemplateError(f"{source} is not a PNG, JPEG, GIF or WebP image")
    return Image(kind, base64.b64encode(data).decode("ascii"), source)


def row_images(values: Mapping[str, object], folder: Path) -> tuple[Image, ...]:
    """The images a dataset row names, read from `folder` (the dataset's folder)."""
    images = []
    for column, value in values.items():
        if not is_image_column(column) or value in (None, ""):
            continue
        images.append(_read(str(value), column, folder))
    return tuple(images)


def _read(relative: str, column: str, folder: Path) -> Image:
    where = f"column {column}: {relative!r}"
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise TemplateError(
            f"{where}: give an image path relative to the dataset's folder, without '..'"
        )
    root = folder.resolve()
    path = (root / candidate).resolve()
    if not path.is_relative_to(root):
        raise TemplateError(f"{where}: the path leads outside the dataset's folder")
    if not path.is_file():
        raise TemplateError(f"{where}: no such image file next to the dataset ({path})")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise TemplateError(f"{where}: larger than {MAX_IMAGE_BYTES / 1e6:.0f} MB")
    try:
        return image_from_bytes(path.read_bytes(), relative)
    except TemplateError as exc:
        raise TemplateError(f"column {column}: {exc}") from None


def with_images(messages: Sequence[Message], images: Sequence[Image]) -> tuple[Message, ...]:
    """`messages` with `images` added to the last user message."""
    if not images:
        return tuple(messages)
    out = list(messages)
    last = max(i for i, m in enumerate(out) if m.role == "user")
    message = out[last]
    out[last] = Message(
        message.role,
        message.content,
        message.tool_calls,
        message.tool_call_id,
        message.name,
        (*message.images, *images),
    )
    return tuple(out)
