"""A command's file outputs: exactly the path given, and over an existing file only if it is the command's own.

The rule of every command that writes a file (`plot --out`, `compare --out`'s files,
`evaluate`'s evaluation.json and `--render`, `bench --out`; `train --out` is a run
folder, `pgjax.running.run_folder.files.prepare_out_dir`):

* the file goes exactly to the path given: no suffix is added, no sibling is made
  (where the suffix names the format, a missing or unknown one is refused);
* a path that holds a file already is written over only if that file is
  recognisably the command's own earlier output (`Own`: an image of the format
  its suffix names, a JSON object of the command's keys) or is empty; any other
  file (`/etc/hostname`, a user's notes) is refused, as is what is not a plain
  file (a folder, a device, a pipe);
* a refusal is one line naming the flag and the path, before any work, and
  nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

# The first bytes of the image formats matplotlib (and Pillow's GIF) writes; SVG (XML whose first 4 KiB open an
# <svg> element), WebP (RIFF ... WEBP) and AVIF (... ftypavif) are told apart in `image`. "raw" and "rgba" (bare
# pixels) have no signature: an existing file is never taken for one.
IMAGE_SIGNATURES = {
    "png": (b"\x89PNG\r\n\x1a\n",), "pdf": (b"%PDF-",), "ps": (b"%!PS",), "eps": (b"%!PS", b"\xc5\xd0\xd3\xc6"),
    "svgz": (b"\x1f\x8b",), "jpg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",), "tif": (b"II*\x00", b"MM\x00*"),
    "tiff": (b"II*\x00", b"MM\x00*"), "pgf": (b"%% Creator: Matplotlib",), "gif": (b"GIF87a", b"GIF89a"),
}
HEAD_BYTES = 4096
OWN_MAX_BYTES = 2**30  # a larger file is no earlier output of a command's (and is not read to tell)


@dataclasses.dataclass(frozen=True)
class Own:
    """What a command's own output looks like: `recognise(path)` tells one, `what` names it in a refusal."""

    what: str
    recognise: Callable[[Path], bool]


def _head(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(HEAD_BYTES)


def image(image_format: str) -> Own:
    """An image of `image_format` ("png", "pdf", ...: a key of `IMAGE_SIGNATURES`), told by its first bytes."""
    def recognise(path: Path) -> bool:
        head = _head(path)
        if image_format == "svg":
            return head.lstrip().startswith(b"<") and b"<svg" in head
        if image_format == "webp":
            return head.startswith(b"RIFF") and head[8:12] == b"WEBP"
        if image_format == "avif":
            return head[4:12] == b"ftypavif"
        signatures = IMAGE_SIGNATURES.get(image_format)
        return signatures is not None and head.startswith(signatures)

    return Own(f"a {image_format.upper()} image", recognise)


def json_object(what: str, keys: tuple[str, ...]) -> Own:
    """A JSON object holding every one of `keys` (`what` names it, e.g. "a comparison.json of pgjax.compare")."""
    def recognise(path: Path) -> bool:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(key in data for key in keys)

    return Own(what, recognise)


def check_output_file(flag: str, path: Path | None, own: Own | None = None, *, make_folders: bool = False) -> None:
    """Refuse a file to write, before any work, unless it can be written exactly at `path`.

    Refused: an empty path or "."; a folder; a path under a file; a folder that is
    missing (unless `make_folders`: then the nearest folder that exists) or where
    no file can be made (tried with a probe file, removed); an existing path that
    is not a plain file, or a plain file that is neither empty nor `own`'s (no
    `own`: any non-empty file). Nothing is left behind.

    Args:
      flag: the flag that gave the path ("--out"), named in the message; path: None (not given) passes;
      own: what the command's own earlier output at `path` looks like; make_folders: the command makes the
        missing folders above `path`.

    Raises:
      ValueError: one line naming the flag and how to fix it.
    """
    if path is None:
        return
    if str(path) in ("", "."):
        raise ValueError(f"{flag} '{path}' names no file: give a file, e.g. {flag} results.json")
    try:
        _check_path(flag, path, own, make_folders)
    except OSError as error:  # e.g. a name too long for the file system
        raise ValueError(f"cannot write to {flag} {path}: {error.strerror or error}") from None


def _check_path(flag: str, path: Path, own: Own | None, make_folders: bool) -> None:
    """`check_output_file` for a path given. OSError: the file system cannot tell (a name too long)."""
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder: give a file in it")
    if path.exists() or path.is_symlink():
        _check_existing(flag, path, own)
    folder = path.parent
    while make_folders and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise ValueError(f"no such folder for {flag}: {folder}")
    probe = folder / f".pgjax-write-test-{os.getpid()}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to {flag} {path}: {error.strerror or error} in {folder}") from None


def _check_existing(flag: str, path: Path, own: Own | None) -> None:
    """`check_output_file` for a path that exists (or is a link): a plain file, empty or `own`'s."""
    if not path.is_file():
        raise ValueError(f"{flag} {path} is not a plain file (a link to nothing, a device, a pipe): give the "
                         "path of a file to write")
    size = path.stat().st_size
    if size and not (own is not None and size <= OWN_MAX_BYTES and own.recognise(path)):
        kind = f"not {own.what}" if own is not None else "not empty"
        raise ValueError(f"{flag} {path} is an existing file, {kind}: pgjax writes neither over it nor beside it; "
                         f"give another path (or move that file away)")
