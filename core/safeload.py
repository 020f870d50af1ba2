"""Loading downloaded weights without running them.

A .pdparams / .pdopt is a pickle, and pickle.load (so paddle.load) calls whatever the file names:
a "weights" file can run os.system. This unpickler resolves only the few globals that plain
weights need (_ALLOWED) and refuses any other with one line naming the file and the global.
numpy's own globals are wrapped too: a pickled dtype state can make numpy read pointers out of
the file, so only plain number dtypes, set up the way numpy pickles them, get through.
No escape hatch: a file this refuses was not written by paddle.save / fluid.save.
"""
import collections
import os
import pickle

import numpy as np
from safetensors.numpy import load_file, save

from .fsutil import atomic_path

NAME_TABLE = "StructuredToParameterName@@"  # paddle.save's structured name -> parameter name
BIG_PARAMS = "UnpackBigParamInfor@@"  # paddle.save splits arrays over 1 GiB with protocol 2/3


class WeightsFileError(ValueError):
    """A weights file that cannot be loaded; str() is one line, `path` and `reason` its parts."""

    def __init__(self, path, reason, sep=": "):
        self.path, self.reason = path, reason
        super().__init__(f"{path}{sep}{reason}")


class RefusedPickle(WeightsFileError):
    """A pickle that asks for more than arrays, dicts and lists."""


class _Refused(Exception):  # raised inside the unpickler, before the file name is known
    pass


def _latin1_bytes(text, encoding):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1"); other codecs
    # (zlib, base64, ...) are never what a pickler writes.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Refused(f"asks to call _codecs.encode with the {ascii(encoding)} codec")
    return text.encode("latin1")


def _dtype(spec, align=False, copy=True):
    # Plain numbers only: object and structured dtypes (and their pickled flags) can make numpy
    # read pointers out of the file's bytes. copy=True: never hand out numpy's shared dtypes.
    dtype = np.dtype(spec, bool(align), True) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"asks for the numpy dtype {ascii(spec)}")
    return dtype


def _scalar(dtype, data):  # a numpy scalar (YouTube-8M's nframes is an np.int32)
    if not isinstance(dtype, np.dtype) or not isinstance(data, (bytes, str)):
        raise _Refused("asks for a numpy scalar that is not a number")
    return _NP_SCALAR(dtype, data)


def _frombuffer(data, dtype, shape, order):  # arrays in pickle protocol 5 (Python 3.14's default)
    if not isinstance(data, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or order not in ("C", "F"):
        raise _Refused("asks for a numpy array from something other than bytes")
    return _NP_FROMBUFFER(data, dtype, shape, order)


# Taken from live objects rather than imported by name: numpy 1.x calls the module numpy.core,
# numpy 2.x numpy._core (and warns on the old name); pickles of both kinds name both.
_NP_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_NP_SCALAR = np.float32(0).__reduce__()[0]
_NP_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]


def _NDARRAY(*args):  # stands for numpy.ndarray as _reconstruct's argument; never called by numpy's pickles
    raise _Refused("asks to call numpy.ndarray")


_ALLOWED = {
    # every ndarray: _reconstruct(numpy.ndarray, (0,), b"b"), then BUILD sets shape, dtype, data
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    # Paddle >= 2.1 saves a Tensor nested in a container as tuple((name, ndarray))
    ("builtins", "tuple"): tuple,
    # model.state_dict() nested in a checkpoint dict is an OrderedDict
    ("collections", "OrderedDict"): collections.OrderedDict,
    # protocol 2 from Python 3 (fluid.save; paddle.save(protocol=2)): bytes, and b"" as bytes()
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "bytes"): bytes,
}


class _Unpickler(pickle._Unpickler):
    """pickle's pure-Python unpickler: unlike the C one it lets us check each BUILD (__setstate__)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file):
        super().__init__(file, encoding="latin1")  # latin1: Python 2 pickles hold array data as str
        self.fresh = {}  # id: array from reconstruct() awaiting its one BUILD (held, so ids stay unique)

    def find_class(self, module, name):
        module = "builtins" if module == "__builtin__" else module  # Python 2's (and protocol 2's) name
        if not all(part.isidentifier() for part in f"{module}.{name}".split(".")):
            raise pickle.UnpicklingError("not a global's name")  # e.g. a text file read as protocol 0
        if (module, name) not in _ALLOWED:
            raise _Refused(f"asks to call {module}.{name}")
        found = _ALLOWED[(module, name)]
        return getattr(self, found) if isinstance(found, str) else found  # a str names a method

    def reconstruct(self, subtype, shape, typecode):
        if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
            raise _Refused("asks for a numpy array in a way numpy never writes")
        array = _NP_RECONSTRUCT(np.ndarray, (0,), b"b")
        self.fresh[id(array)] = array
        return array

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.dtype):  # only the byte order may differ from the dtype's own state
            what = "a numpy dtype"
            ok = type(state) is tuple and len(state) == 8 and state[:1] == (3,) \
                and state[1] in ("<", ">", "|", "=") and state[2:] == inst.__reduce__()[2][2:]
        else:  # an array from reconstruct(), once: (version, shape, dtype, fortran, bytes)
            what = "a numpy array" if isinstance(inst, np.ndarray) else f"a {type(inst).__name__}"
            ok = id(inst) in self.fresh and type(state) is tuple and len(state) == 5 \
                and isinstance(state[2], np.dtype) and isinstance(state[4], (bytes, str))
            self.fresh.pop(id(inst), None)
        if not ok:
            raise _Refused(f"asks to set the state of {what} in a way numpy never writes")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


def load_pickle(path):
    """What pickle.load(f, encoding="latin1") returns for a pickle of arrays, dicts and lists
    (e.g. the YouTube-8M reference pickles, Python 2 or 3); anything else is refused."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            return _Unpickler(f).load()
        except _Refused as why:
            raise RefusedPickle(path, f"{why}: refusing to load; this file is not plain weights", " ") from None
        except Exception:  # noqa: BLE001 - a truncated or foreign file fails in many ways
            raise WeightsFileError(path, "not a weights file (truncated or not a pickle)") from None


def load(path):
    """What paddle.load(path, return_numpy=True) returns for .pdparams / .pdopt / checkpoints
    written by paddle.save (2.x, 3.x) or fluid.save / save_dygraph (1.8), or {name: ndarray}
    for a .safetensors file; numpy arrays throughout, never paddle Tensors."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: 8-byte header length, then a JSON header; a pickle (protocol >= 2) starts 0x80
    if path.endswith(".safetensors") or (head[8:9] == b"{" and head[:1] != b"\x80"):
        try:
            return load_file(path)
        except Exception:  # noqa: BLE001 - SafetensorError, or a header that is not JSON
            raise WeightsFileError(path, "not a weights file (truncated or not safetensors)") from None
    obj = load_pickle(path)
    try:
        return _like_paddle_load(obj)
    except Exception:  # noqa: BLE001 - e.g. a malformed big-parameter table, a cycle
        raise WeightsFileError(path, "not a weights file (unexpected layout)") from None


def _like_paddle_load(obj):
    """paddle.load's post-processing (paddle/framework/io.py load), minus the Tensor wrapping."""
    if isinstance(obj, dict) and BIG_PARAMS in obj:
        for key, info in obj.pop(BIG_PARAMS).items():
            parts = [obj.pop(part) for part in info["slices"]]
            obj[key] = np.concatenate(parts).reshape(info["OriginShape"])
    if isinstance(obj, dict) and NAME_TABLE in obj:
        del obj[NAME_TABLE]  # a flat state dict: its values are arrays already
        return obj
    return _untuple(obj)


def _untuple(obj):
    # Paddle >= 2.1 saved a nested Tensor as (name, ndarray); paddle.load gives back the array.
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], np.ndarray):
        return obj[1]
    if isinstance(obj, dict):
        for key in obj:
            obj[key] = _untuple(obj[key])
    elif isinstance(obj, list):
        obj[:] = [_untuple(item) for item in obj]
    elif isinstance(obj, tuple):
        obj = tuple(_untuple(item) for item in obj)
    return obj


def save_safetensors(state, path):
    """Write {name: array} (numpy arrays or paddle Tensors) to `path` as safetensors, atomically:
    a reader sees the old file or the new one. The file gets the usual umask-based mode."""
    arrays = {}
    for name, value in state.items():
        if not hasattr(value, "__array__"):
            raise ValueError(f"{name!r} is a {type(value).__name__}, not an array: safetensors holds arrays only")
        arrays[name] = np.ascontiguousarray(np.asarray(value))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # save_file would make the file 0600
        f.write(save(arrays))
