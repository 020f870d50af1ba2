"""Folders of fluid weights: one file per variable, as fluid.io.save_params / save_persistables
write them (the older PaddleCV video-zoo releases). Each file is one serialised LoDTensor, read
here by its byte layout alone (no pickle, no protobuf library):

    uint32 version | uint64 LoD levels, each: uint64 byte size + that many bytes of offsets |
    uint32 tensor version | int32 size of a TensorDesc protobuf | the protobuf
    (field 1: data type enum, field 2: dims as int64 varints, packed or not) | raw little-endian data
"""
import os
import struct

import numpy as np

from .safeload import WeightsFileError

DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
          6: np.float64, 20: np.uint8, 21: np.int8}


def _varint(buf, pos):
    value, shift = 0, 0
    while True:
        byte = buf[pos]  # IndexError past the end: a truncated file
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _tensor_desc(desc):
    """(dtype enum, dims) of a TensorDesc protobuf."""
    dtype, dims, i = None, [], 0
    while i < len(desc):
        key, i = _varint(desc, i)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, i = _varint(desc, i)
        elif field == 2 and wire == 0:
            value, i = _varint(desc, i)
            dims.append(value)
        elif field == 2 and wire == 2:
            length, i = _varint(desc, i)
            end = i + length
            while i < end:
                value, i = _varint(desc, i)
                dims.append(value)
        else:
            raise ValueError(f"unexpected TensorDesc field {field}")
    return dtype, dims


def read_tensor_file(path):
    """The ndarray of one fluid LoDTensor file; WeightsFileError if it is not one."""
    with open(path, "rb") as f:
        buf = f.read()
    try:
        pos = 4
        (levels,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        for _ in range(levels):
            (size,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + size
        pos += 4
        (desc_size,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        if desc_size < 0 or pos + desc_size > len(buf):
            raise ValueError("TensorDesc beyond the end")
        dtype, dims = _tensor_desc(buf[pos:pos + desc_size])
        pos += desc_size
        if dtype not in DTYPES or any(d >= 1 << 40 for d in dims):  # negative dims read as huge
            raise ValueError("unknown data type or dims")
        dtype = np.dtype(DTYPES[dtype]).newbyteorder("<")
        count = int(np.prod(dims)) if dims else 1
        if pos + count * dtype.itemsize != len(buf):
            raise ValueError("data size does not match the dims")
        return np.frombuffer(buf, dtype=dtype, count=count, offset=pos).reshape(dims).astype(dtype.newbyteorder("="))
    except (struct.error, IndexError, ValueError) as err:
        raise WeightsFileError(path, f"not a fluid tensor file ({err})") from None


def read_folder(folder):
    """{variable name: ndarray} of a save_params / save_persistables folder (file name = variable
    name); __model__ and other double-underscore files of inference exports are not variables."""
    names = sorted(n for n in os.listdir(folder) if not n.startswith("__") and not n.startswith("."))
    if not names:
        raise WeightsFileError(folder, "an empty folder, not fluid weights (one file per parameter)")
    return {name: read_tensor_file(os.path.join(folder, name)) for name in names
            if os.path.isfile(os.path.join(folder, name))}
