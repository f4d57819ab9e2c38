"""The cyprop model file: a header and the flat parameter buffer, checksummed.

Layout, all integers little-endian::

    magic            8 bytes   b"CYPROP\\x00\\n"
    header length    4 bytes   unsigned
    header           JSON, UTF-8: format version, configuration, dtype, size
    parameters       the flat parameter buffer, little-endian float32/float64
    checksum        32 bytes   SHA-256 of everything before it

Loading never runs code from the file (there is no pickle in the format) and
reads numbers with an explicit byte order, so a file written on one platform
loads on any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from typing import Any

import numpy as np

MAGIC = b"CYPROP\x00\n"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<I")
_CHECKSUM_SIZE = hashlib.sha256().digest_size


class ModelFileError(ValueError):
    """A model file that cannot be read: damaged, truncated or not a cyprop model."""


def write_model(path: str | os.PathLike[str], header: dict[str, Any], params: np.ndarray) -> None:
    """Write ``header`` and ``params`` to ``path`` atomically.

    The file is written beside its destination and renamed over it, so an
    interrupted save leaves any earlier file at ``path`` untouched.
    """
    header = {"format_version": FORMAT_VERSION, **header}
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    little_endian = params.astype(params.dtype.newbyteorder("<"), copy=False)
    body = MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes + little_endian.tobytes()
    content = body + hashlib.sha256(body).digest()

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".cyprop-", suffix=".tmp", dir=directory)
    try:
        # mkstemp makes the file private; give it the mode open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """Return the header and the raw little-endian parameter bytes of a model file.

    Raises
    ------
    ModelFileError
        If the file is not a cyprop model, is truncated or damaged, or was
        written by a newer format version.
    """
    with open(path, "rb") as stream:
        content = stream.read()
    name = os.fspath(path)
    minimum = len(MAGIC) + _LENGTH.size + _CHECKSUM_SIZE
    if len(content) < minimum or not content.startswith(MAGIC):
        raise ModelFileError(f"{name} is not a cyprop model file")
    body, checksum = content[:-_CHECKSUM_SIZE], content[-_CHECKSUM_SIZE:]
    if hashlib.sha256(body).digest() != checksum:
        raise ModelFileError(
            f"{name} is damaged or truncated: its checksum does not match its contents"
        )
    (header_length,) = _LENGTH.unpack_from(body, len(MAGIC))
    header_start = len(MAGIC) + _LENGTH.size
    header_end = header_start + header_length
    if header_end > len(body):
        raise ModelFileError(f"{name} is damaged: its header runs past the end of the file")
    try:
        header = json.loads(body[header_start:header_end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{name} is damaged: its header cannot be read ({error})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{name} is damaged: its header is not a mapping")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{name} has model format version {version!r}; this cyprop reads "
            f"version {FORMAT_VERSION}"
        )
    return header, body[header_end:]
