"""Reader for CTranslate2's ``model.bin`` (binary format version 6), no CTranslate2 needed.

Layout (little endian), as written by ``ctranslate2.specs.ModelSpec.save``::

    u32 version | str spec name | u32 revision | u32 n_variables
    n × ( str name | u8 rank | rank × u32 dim | u8 dtype | u32 n_bytes | n_bytes data )
    u32 n_aliases | n × ( str alias | str target )

where ``str`` is a u16 length (including a trailing NUL) followed by UTF-8 bytes. int8 weights
come with a ``<name>_scale`` per output row: float = int8 / scale.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from emovox.errors import ConfigError

SUPPORTED_VERSIONS = (5, 6)
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _Concatenated:
    """Read several files as one stream (models shipped in parts)."""

    def __init__(self, paths: Sequence[Path]):
        self.handles: list[BinaryIO] = [open(p, "rb") for p in paths]  # noqa: SIM115
        self.index = 0

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0 and self.index < len(self.handles):
            chunk = self.handles[self.index].read(n)
            if not chunk:
                self.index += 1
                continue
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


def _unpack(stream: _Concatenated, fmt: str, where: Path) -> tuple:
    size = struct.calcsize("<" + fmt)
    data = stream.read(size)
    if len(data) != size:
        raise ConfigError(f"{where}: truncated CTranslate2 model file")
    return struct.unpack("<" + fmt, data)


def _string(stream: _Concatenated, where: Path) -> str:
    (length,) = _unpack(stream, "H", where)
    return stream.read(length)[:-1].decode("utf-8")


def _array(raw: bytes, dtype_id: int, shape: tuple[int, ...], where: Path) -> np.ndarray:
    if dtype_id not in DTYPES:
        raise ConfigError(f"{where}: unknown CTranslate2 dtype {dtype_id}")
    dtype = DTYPES[dtype_id]
    if dtype == "bfloat16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32) \
            .reshape(shape)
    return np.frombuffer(raw, dtype).reshape(shape)


def read_model_bin(paths: str | Path | Sequence[str | Path], prefix: str = ""
                   ) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable: array}) for variables starting with ``prefix``; int8 weights are
    de-quantised and all floating-point arrays returned as float32."""
    parts = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    where = parts[0]
    for part in parts:
        if not part.exists():
            raise ConfigError(f"{part}: CTranslate2 model file not found")
    stream = _Concatenated(parts)
    try:
        (version,) = _unpack(stream, "I", where)
        if version not in SUPPORTED_VERSIONS:
            raise ConfigError(f"{where}: CTranslate2 binary version {version} is not supported "
                              f"(expected {SUPPORTED_VERSIONS})")
        spec = _string(stream, where)
        _unpack(stream, "I", where)  # spec revision
        (count,) = _unpack(stream, "I", where)
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _string(stream, where)
            (rank,) = _unpack(stream, "B", where)
            shape = _unpack(stream, f"{rank}I", where) if rank else ()
            dtype_id, n_bytes = _unpack(stream, "BI", where)
            raw = stream.read(n_bytes)
            if len(raw) != n_bytes:
                raise ConfigError(f"{where}: truncated CTranslate2 model file (in {name})")
            if name.startswith(prefix):
                variables[name] = _array(raw, dtype_id, shape, where)
    finally:
        stream.close()
    out = {}
    for name, value in variables.items():
        if name.endswith("_scale") and name[: -len("_scale")] in variables:
            continue
        scale = variables.get(f"{name}_scale")
        if value.dtype == np.int8 and scale is not None:
            value = value.astype(np.float32) / scale.astype(np.float32).reshape(-1, 1)
        elif np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float32)
        out[name] = value
    return spec, out
