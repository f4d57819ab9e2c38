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

import errno
import hashlib
import json
import os
import struct
import tempfile
from typing import IO, Any

import numpy as np

from cyprop._validation import MAX_PARAMETERS, count_parameters

MAGIC = b"CYPROP\x00\n"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<I")
_CHECKSUM_SIZE = hashlib.sha256().digest_size
# A header holds the configuration and the generator's state, a few hundred
# bytes; this leaves room for networks of about a million layers.
MAX_HEADER_BYTES = 1 << 24
_ITEMSIZES = {"float32": 4, "float64": 8}
# The most parameter bytes any model file can hold.
_MAX_PAYLOAD_BYTES = MAX_PARAMETERS * max(_ITEMSIZES.values())
# Bytes read at a time, so that memory follows the data actually present.
_READ_CHUNK = 1 << 20


class ModelFileError(ValueError):
    """A model file that cannot be read: damaged, truncated or not a cyprop model."""


def check_path(path: Any) -> str:
    """Return ``path`` as a str, raising unless it names a file.

    An int would be taken for an open file descriptor.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {path!r}")
    return os.fsdecode(path)


def write_model(path: str | os.PathLike[str], header: dict[str, Any], params: np.ndarray) -> None:
    """Write ``header`` and ``params`` to ``path`` atomically.

    The file is written beside its destination and renamed over it, so an
    interrupted save leaves any earlier file at ``path`` untouched. A
    symbolic link is followed, so the file it names is replaced. An existing
    file's permission bits carry over to the new one, and its owner and group
    where this process may set them (its ACLs and extended attributes do
    not). An ``OSError`` names ``path``, not the temporary file.
    """
    name = check_path(path)
    destination = os.path.realpath(name)
    header = {"format_version": FORMAT_VERSION, **header}
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ValueError(
            f"the network's header takes {len(header_bytes):,} bytes; a model file holds "
            f"at most {MAX_HEADER_BYTES:,}"
        )
    little_endian = params.astype(params.dtype.newbyteorder("<"), copy=False)
    body = MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes + little_endian.tobytes()
    content = body + hashlib.sha256(body).digest()

    directory = os.path.dirname(destination)
    temporary = None
    try:
        try:
            existing: os.stat_result | None = os.stat(destination)
        except FileNotFoundError:
            existing = None
        if existing is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        else:
            mode = existing.st_mode & 0o777
            if not os.access(destination, os.W_OK):
                # Renaming over it would succeed where open() is refused.
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        handle, temporary = tempfile.mkstemp(prefix=".cyprop-", suffix=".tmp", dir=directory)
        if existing is not None and hasattr(os, "chown"):
            try:
                os.chown(temporary, existing.st_uid, existing.st_gid)
            except PermissionError:
                pass  # another owner's file, or a group this user is not in
        # mkstemp makes the file private; give it the mode open() would leave.
        os.chmod(temporary, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, destination)
    except BaseException as error:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        if isinstance(error, OSError) and error.errno is not None:
            # Report the file the user asked for, not the temporary beside it.
            raise type(error)(error.errno, error.strerror, name) from error
        raise


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytearray]:
    """Return the header and the raw little-endian parameter bytes of a model file.

    The magic string is checked before anything else is read, the header is
    read up to :data:`MAX_HEADER_BYTES`, and the parameters up to the size
    its header gives, so a foreign file or an endless stream is refused
    after a few bytes. The header's parameter count and dtype are checked
    here; the checksum is verified before any other of its values is trusted.

    Raises
    ------
    ModelFileError
        If the file is not a cyprop model, is truncated or damaged, or was
        written by a newer format version.
    TypeError
        If ``path`` is not a str or os.PathLike.
    """
    name = check_path(path)
    with open(name, "rb") as stream:
        prefix = _read_at_most(stream, len(MAGIC) + _LENGTH.size)
        if len(prefix) < len(MAGIC) + _LENGTH.size or not prefix.startswith(MAGIC):
            raise ModelFileError(f"{name} is not a cyprop model file")
        (header_length,) = _LENGTH.unpack_from(prefix, len(MAGIC))
        if header_length > MAX_HEADER_BYTES:
            raise ModelFileError(
                f"{name} is damaged: its header would take {header_length:,} bytes; a model "
                f"file's header takes at most {MAX_HEADER_BYTES:,}"
            )
        header_bytes = _read_at_most(stream, header_length)
        if len(header_bytes) < header_length:
            raise ModelFileError(f"{name} is damaged: its header runs past the end of the file")
        hasher = hashlib.sha256(prefix)
        hasher.update(header_bytes)
        header, problem = _parse_header(header_bytes)
        payload_size = None
        if header is not None:
            payload_size, problem = _payload_size(header)
            if payload_size is not None:
                # Refused before the parameters are read into memory.
                problem = _layer_sizes_problem(header)
                if problem is not None:
                    payload_size = None
        if header is None or payload_size is None:
            # Nothing to trust in the header: the checksum says whether the file
            # was damaged or written that way. Read no more than a model can hold.
            _, checksum, count = _hash_rest(stream, hasher, _MAX_PAYLOAD_BYTES + _CHECKSUM_SIZE,
                                            keep=False)
            if count < _CHECKSUM_SIZE or hasher.digest() != checksum:
                raise _checksum_error(name)
            _check_version(name, header)
            raise ModelFileError(f"{name} has an invalid header: {problem}")
        expected = payload_size + _CHECKSUM_SIZE
        payload, checksum, count = _hash_rest(stream, hasher, expected, keep=True)
    if count != expected:
        _check_version(name, header)
        found = f"more than {expected:,}" if count > expected else f"{count:,}"
        raise ModelFileError(
            f"{name} is damaged or truncated: its header gives {header['n_parameters']:,} "
            f"{header['dtype']} parameters ({payload_size:,} bytes, {expected:,} with the "
            f"checksum), but {found} bytes follow the header"
        )
    if hasher.digest() != checksum:
        raise _checksum_error(name)
    _check_version(name, header)
    return header, payload


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``, fewer at its end, read chunk by chunk."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = stream.read(min(_READ_CHUNK, size - len(chunks)))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def _hash_rest(stream: IO[bytes], hasher: Any, limit: int,
               keep: bool) -> tuple[bytearray, bytes, int]:
    """Hash the rest of ``stream`` but its last checksum-sized bytes, reading at
    most ``limit + 1`` bytes.

    Returns the bytes hashed (when ``keep``), the last bytes, and the count read.
    """
    kept = bytearray()
    tail = b""
    count = 0
    while count <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - count))
        if not chunk:
            break
        count += len(chunk)
        data = tail + chunk
        tail, body = data[-_CHECKSUM_SIZE:], data[:-_CHECKSUM_SIZE]
        hasher.update(body)
        if keep:
            kept += body
    return kept, tail, count


def _parse_header(header_bytes: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The header as a mapping, or None and what is wrong with it."""
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except UnicodeDecodeError as error:
        return None, f"it is not UTF-8 ({error})"
    except RecursionError:
        return None, "it is not JSON that can be read (nested too deeply)"
    except ValueError as error:  # JSONDecodeError, or an integer of too many digits
        return None, f"it is not JSON that can be read ({error})"
    if not isinstance(header, dict):
        return None, "it is not a mapping"
    return header, None


def _payload_size(header: dict[str, Any]) -> tuple[int | None, str | None]:
    """Bytes of parameters that the header announces, or None and what is wrong."""
    n_parameters, dtype = header.get("n_parameters"), header.get("dtype")
    if isinstance(n_parameters, bool) or not isinstance(n_parameters, int):
        return None, f"n_parameters must be an integer, got {n_parameters!r}"
    if not 1 <= n_parameters <= MAX_PARAMETERS:
        return None, (f"n_parameters is {n_parameters:,}; a network has between 1 and "
                      f"{MAX_PARAMETERS:,} parameters")
    if not isinstance(dtype, str) or dtype not in _ITEMSIZES:
        return None, f"dtype must be 'float32' or 'float64', got {dtype!r}"
    return n_parameters * _ITEMSIZES[dtype], None


def _layer_sizes_problem(header: dict[str, Any]) -> str | None:
    """What is wrong when well-formed layer sizes need fewer parameters than the
    header announces, which would otherwise be read into memory first.

    Other inconsistencies, and malformed sizes, are left to the network's own
    checks of the header, which name them more closely.
    """
    sizes = header.get("layer_sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(type(size) is int and size >= 1 for size in sizes)):
        return None
    needed = count_parameters(sizes)
    if needed >= header["n_parameters"]:
        return None
    return (f"its layer sizes {sizes} need {needed:,} parameters, but it gives "
            f"n_parameters as {header['n_parameters']:,}")


def _check_version(name: str, header: dict[str, Any] | None) -> None:
    """Refuse a header of another format version, where the rest may differ too."""
    if header is None:
        return
    version = header.get("format_version")
    # True == 1 in Python: the version must be the integer itself.
    if type(version) is not int or version != FORMAT_VERSION:
        raise ModelFileError(
            f"{name} has model format version {version!r}; this cyprop reads "
            f"version {FORMAT_VERSION}"
        )


def _checksum_error(name: str) -> ModelFileError:
    return ModelFileError(
        f"{name} is damaged or truncated: its checksum does not match its contents"
    )
