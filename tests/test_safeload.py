"""core.safeload: crafted pickles are refused before they run anything; real weights from Paddle
1.8 / 2.6 / 3.x, YouTube-8M reference pickles and safetensors load to the arrays paddle.load gives."""
import codecs
import glob
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from core import safeload

pytestmark = pytest.mark.smoke  # passes on Paddle 2.6.2 (numpy 1.26) as well as 3.x

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "pickles")
REFUSAL = "refusing to load; this file is not plain weights"
RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


def same(a, b, where="top", ordered=True):
    """a and b are equal, type for type, arrays byte for byte (dicts key for key, in order if `ordered`)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape) and a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        keys = (list(a), list(b)) if ordered else (sorted(a), sorted(b))
        assert keys[0] == keys[1], f"{where}: keys {keys[0]} vs {keys[1]}"
        for key in a:
            same(a[key], b[key], f"{where}/{key}", ordered)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", ordered)
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


# --------------------------------------------------------------------------- crafted attacks

class Call:
    """Pickles as a call fn(*args): what a malicious __reduce__ returns."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def touch(marker):
    return Call(os.system, f"touch {marker}")


def _raw(text):
    return text.encode()


ATTACKS = {  # name: (pickle bytes for a marker path, the global the refusal names; os.system is posix.system)
    "os.system": (lambda m: pickle.dumps({"conv1_weights": touch(m)}), f"{os.system.__module__}.system"),
    "os.system by name": (lambda m: _raw(f"cos\nsystem\n(S'touch {m}'\ntR."), "os.system"),
    "subprocess.Popen": (lambda m: pickle.dumps(Call(subprocess.Popen, ["touch", str(m)])), "subprocess.Popen"),
    "subprocess.check_output": (lambda m: pickle.dumps(Call(subprocess.check_output, ["touch", str(m)])),
                                "subprocess.check_output"),
    "builtins.eval": (lambda m: pickle.dumps(Call(eval, f"__import__('os').system('touch {m}')")), "builtins.eval"),
    "builtins.eval protocol 2": (lambda m: pickle.dumps(Call(eval, f"__import__('os').system('touch {m}')"),
                                                        protocol=2), "builtins.eval"),
    "builtins.exec": (lambda m: pickle.dumps(Call(exec, f"import os; os.system('touch {m}')")), "builtins.exec"),
    "getattr(__import__('os'), 'system')": (
        lambda m: _raw(f"c__builtin__\ngetattr\n(c__builtin__\n__import__\n(S'os'\ntRS'system'\ntR(S'touch {m}'\ntR."),
        "builtins.getattr"),
    "__import__ first, then getattr": (
        lambda m: _raw("c__builtin__\n__import__\n(S'os'\ntRp0\n0"
                       f"c__builtin__\ngetattr\n(g0\nS'system'\ntR(S'touch {m}'\ntR."),
        "builtins.__import__"),
    "reduce inside the reconstruct args": (
        lambda m: pickle.dumps({"conv1_weights": Call(RECONSTRUCT, np.ndarray, (0,), touch(m))}),
        f"{os.system.__module__}.system"),
    "reduce as an array's data": (
        lambda m: pickle.dumps({"fc_0.w_0": ArrayWithEvilData(m)}, protocol=2), f"{os.system.__module__}.system"),
    "reduce deep in an optimizer state": (
        lambda m: pickle.dumps({"optimizer": {"linear_0.w_0_moment1_0": ("linear_0.w_0_moment1_0", np.zeros(3, "f4")),
                                              "LR_Scheduler": {"last_epoch": touch(m), "last_lr": 0.1}},
                                "trainer": {"epoch": 3}}),
        f"{os.system.__module__}.system"),
}


class ArrayWithEvilData:
    """Pickles like an ndarray (_reconstruct, then BUILD) whose data is a call."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (1,), np.dtype("u1"), False, touch(self.marker))


def write_attack(tmp_path, name, filename="evil.pdparams"):
    make, refused = ATTACKS[name]
    marker = tmp_path / "marker"
    path = tmp_path / filename
    path.write_bytes(make(marker))
    return path, marker, refused


def wait_for(path, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_files_are_live(tmp_path, name):
    """Each crafted file really runs its command under plain pickle.load (so the refusals mean something)."""
    path, marker, _ = write_attack(tmp_path, name)
    try:
        with open(path, "rb") as f:
            pickle.load(f, encoding="latin1")
    except Exception:  # noqa: BLE001 - the payload has run by the time loading fails
        pass
    assert wait_for(marker)


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_are_refused_in_one_line(tmp_path, name):
    path, marker, refused = write_attack(tmp_path, name)
    for loader in (safeload.load, safeload.load_pickle):
        with pytest.raises(safeload.RefusedPickle) as err:
            loader(path)
        assert str(err.value) == f"{path} asks to call {refused}: {REFUSAL}"
        assert isinstance(err.value, ValueError) and err.value.path == str(path)
    time.sleep(0.1)  # a Popen would have had time to touch it
    assert not marker.exists()


class Pickled:
    """Pickles as fn(*args), then __setstate__(state): how numpy pickles its arrays and dtypes."""

    def __init__(self, fn, args, state):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return self.fn, self.args, self.state


def array_of(dtype, data, shape=(1,)):
    return Pickled(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


# a dtype whose object field overlaps an int field, its pickled flags saying "no objects": numpy
# then reads the file's bytes as a PyObject pointer
OVERLAPPING = Pickled(np.dtype, ("V16", False, True),
                      (3, "|", None, ("a", "b"), {"a": (np.dtype("O"), 0), "b": (np.dtype("<i8"), 0)}, 16, 1, 0))
TWICE_BUILT = ("cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'b'\ntRp0\n"
               "(I1\n(I1\ntcnumpy\ndtype\n(S'u1'\nI00\nI01\ntRp1\n(I3\nS'|'\nNNNI-1\nI-1\nI0\ntbI00\nS'A'\ntb0"
               "g0\n(I1\n(I2\ntg1\nI00\nS'BC'\ntb.").encode()  # the same array's state set twice
NUMPY_TRICKS = {  # name: (pickle bytes, what the refusal says the file asks for)
    "overlapping object field": (pickle.dumps({"w": array_of(OVERLAPPING, b"A" * 16)}),
                                 "asks for the numpy dtype 'V16'"),
    "flags claiming objects": (pickle.dumps({"w": array_of(Pickled(np.dtype, ("f8", False, True),
                                                                   (3, "<", None, None, None, -1, -1, 1)), b"A" * 8)}),
                               "asks to set the state of a numpy dtype in a way numpy never writes"),
    "object array": (pickle.dumps({"w": np.array([1, "x"], dtype=object)}), "asks for the numpy dtype 'O8'"),
    "structured array": (pickle.dumps({"w": np.zeros(2, dtype=[("a", "f4")])}), "asks for the numpy dtype 'V4'"),
    "string array": (pickle.dumps({"w": np.array(["ab"])}), "asks for the numpy dtype 'U2'"),
    "unusual _reconstruct": (pickle.dumps({"w": Call(RECONSTRUCT, np.ndarray, (10,), "O")}),
                             "asks for a numpy array in a way numpy never writes"),
    "numpy.ndarray called": (pickle.dumps({"w": Call(np.ndarray, (3,), "f4")}), "asks to call numpy.ndarray"),
    "an array's state set twice": (TWICE_BUILT, "asks to set the state of a numpy array in a way numpy never writes"),
}


def test_numpy_trick_is_live(tmp_path):
    """Plain pickle.load of OVERLAPPING gives an array whose first field crashes the process."""
    path = tmp_path / "overlap.pdparams"
    path.write_bytes(NUMPY_TRICKS["overlapping object field"][0])
    child = ("import pickle, resource, sys; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
             "w = pickle.load(open(sys.argv[1], 'rb'))['w']; print(w['a'][0])")
    assert subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True).returncode < 0


@pytest.mark.parametrize("name", NUMPY_TRICKS)
def test_numpy_tricks_are_refused(tmp_path, name):
    data, asks = NUMPY_TRICKS[name]
    path = tmp_path / "trick.pdparams"
    path.write_bytes(data)
    with pytest.raises(safeload.RefusedPickle) as err:
        safeload.load(path)
    assert str(err.value) == f"{path} {asks}: {REFUSAL}"


def test_refusal_names_the_file_as_given(tmp_path, monkeypatch):
    write_attack(tmp_path, "os.system")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(safeload.RefusedPickle, match=rf"^evil.pdparams asks to call \w+\.system: {REFUSAL}$"):
        safeload.load("evil.pdparams")


def test_other_codecs_than_latin1_are_refused(tmp_path):
    path = tmp_path / "zlib.pdparams"
    path.write_bytes(pickle.dumps({"w": Call(codecs.encode, b"x" * 100, "zlib")}, protocol=2))
    with pytest.raises(safeload.RefusedPickle, match="asks to call _codecs.encode with the 'zlib' codec: refusing"):
        safeload.load(path)


def test_crafted_names_are_not_weights(tmp_path):
    path = tmp_path / "newline.pdparams"
    path.write_bytes(b"\x80\x04\x8c\x04os\nx\x8c\x06system\x93.")
    with pytest.raises(safeload.WeightsFileError, match=r"newline.pdparams: not a weights file \(truncated or not a "):
        safeload.load(path)


def test_a_refused_yt8m_pickle(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "train0.pkl"
    path.write_bytes(pickle.dumps([{"video": b"v", "feature": np.zeros((1, 1024), np.uint8), "label": touch(marker)}],
                                  protocol=2))
    with pytest.raises(safeload.RefusedPickle, match=REFUSAL):
        safeload.load_pickle(path)
    assert not marker.exists()


def _truncated(tmp_path):
    paddle.save({"w": paddle.ones([64])}, str(tmp_path / "whole.pdparams"))
    data = (tmp_path / "whole.pdparams").read_bytes()
    return data[:len(data) // 2]


NOT_WEIGHTS = {
    "empty": lambda tmp_path: b"",
    "text": lambda tmp_path: b"conv1_weights: 0.5\n",
    "truncated pickle": _truncated,
    "persistent id": lambda tmp_path: b"\x80\x02X\x01\x00\x00\x00xQ.",
    "LoDTensor binary (fluid.io.save_params)": lambda tmp_path: bytes(16) + b"\x04\x00\x00\x00\x08\x05\x10\x03",
}


@pytest.mark.parametrize("name", NOT_WEIGHTS)
def test_not_a_pickle_is_one_line(tmp_path, name):
    path = tmp_path / "bad.pdparams"
    path.write_bytes(NOT_WEIGHTS[name](tmp_path))
    with pytest.raises(safeload.WeightsFileError) as err:
        safeload.load(path)
    assert str(err.value) == f"{path}: not a weights file (truncated or not a pickle)"
    assert not isinstance(err.value, safeload.RefusedPickle)


def test_a_truncated_safetensors_file_is_one_line(tmp_path):
    path = tmp_path / "w.safetensors"
    safeload.save_safetensors({"w": np.ones(64, "f4")}, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(safeload.WeightsFileError, match=r"w.safetensors: not a weights file \(truncated or not safet"):
        safeload.load(path)


# --------------------------------------------------------------------------- real files

@pytest.mark.parametrize("name", sorted(os.path.basename(p) for p in glob.glob(os.path.join(FIXTURES, "*.pd*"))))
def test_fixtures_load_like_paddle(name):
    path = os.path.join(FIXTURES, name)
    same(paddle.load(path, return_numpy=True), safeload.load(path))


def test_fixture_contents():
    static = safeload.load(os.path.join(FIXTURES, "fluid18_static.pdparams"))
    assert static["fc_0.w_0"].shape == (4, 3) and static["fc_0.w_0"].dtype == np.float32
    assert {"batch_norm_0.w_0", "batch_norm_0.b_0", "batch_norm_0.w_1", "batch_norm_0.w_2"} <= set(static)
    assert any("moment1" in key for key in safeload.load(os.path.join(FIXTURES, "fluid18_static.pdopt")))
    checkpoint = safeload.load(os.path.join(FIXTURES, "paddle26_checkpoint.pdckpt"))
    assert checkpoint["trainer"] == {"epoch": 3, "examples_seen": 10, "best": 0.5}
    assert checkpoint["optimizer"]["LR_Scheduler"]["last_epoch"] == 0
    assert all(isinstance(v, np.ndarray) for k, v in checkpoint["optimizer"].items() if k != "LR_Scheduler")
    nested = safeload.load(os.path.join(FIXTURES, "paddle26_nested.pdckpt"))
    assert nested["model"]["0.weight"].shape == (4, 3)


def test_yt8m_python2_pickle():
    path = os.path.join(FIXTURES, "yt8m_py2.pkl")
    with open(path, "rb") as f:
        expected = pickle.load(f, encoding="latin1")
    items = safeload.load_pickle(path)
    same(expected, items)
    assert items[0]["video"] == "vid0" and items[0]["feature"].shape == (2, 1024)
    assert items[1]["audio"].shape == (1, 128) and items[1]["audio"].dtype == np.uint8
    assert items[0]["nframes"] == 2 and isinstance(items[0]["nframes"], np.int32) and items[1]["label"] == [1, 7]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_yt8m_python3_pickles(tmp_path, protocol):
    rng = np.random.default_rng(0)
    items = [{"video": f"v{i}".encode(), "feature": rng.integers(0, 256, (n, 1024), dtype=np.uint8),
              "audio": rng.integers(0, 256, (n, 128), dtype=np.uint8), "label": [i, 3], "nframes": np.int32(n)}
             for i, n in enumerate((3, 0))]  # a video with no frames: b"" is pickled as bytes() in protocol 2
    path = tmp_path / "train0.pkl"
    path.write_bytes(pickle.dumps(items, protocol=protocol))
    same(items, safeload.load_pickle(path))


def small_model():
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.BatchNorm1D(3))
    opt = paddle.optimizer.Adam(parameters=model.parameters(), learning_rate=paddle.optimizer.lr.StepDecay(0.1, 1))
    return model, opt


def train_step(model, opt, x):
    (model(x) ** 2).mean().backward()
    opt.step()
    opt.clear_grad()
    opt._learning_rate.step()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model and its Adam after one step, saved by this Paddle in every way the project saves them."""
    folder = tmp_path_factory.mktemp("paddle_files")
    names = paddle.base.unique_name.UniqueNameGenerator()
    x = paddle.to_tensor(np.random.default_rng(0).random((5, 4), dtype=np.float32))
    with paddle.utils.unique_name.guard(names):
        model, opt = small_model()
        train_step(model, opt, x)
    files = {"model.pdparams": model.state_dict(), "adam.pdopt": opt.state_dict(),
             "checkpoint.pdckpt": {"optimizer": opt.state_dict(),
                                   "trainer": {"epoch": 3, "examples_seen": 10, "best": 0.5}},
             "nested.pdckpt": {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1},
             "tensor.pd": paddle.arange(6, dtype="float32").reshape([2, 3]),
             "list.pd": [paddle.ones([2]), {"a": paddle.zeros([1], dtype="int64")}],
             "dtypes.pdparams": {"f16": paddle.ones([2], dtype="float16"), "i64": paddle.to_tensor([1, 2]),
                                 "bool": paddle.to_tensor([True, False]), "empty": paddle.zeros([0, 3])}}
    for name, obj in files.items():
        paddle.save(obj, str(folder / name))
    paddle.save(model.state_dict(), str(folder / "protocol2.pdparams"), protocol=2)
    return folder, model, opt, names, x


def test_this_paddles_files_load_like_paddle(trained):
    folder = trained[0]
    for path in sorted(folder.iterdir()):
        same(paddle.load(str(path), return_numpy=True), safeload.load(path), path.name)


def test_big_parameter_tables_are_joined(tmp_path):
    """paddle.save (protocol 2/3) splits arrays over 1 GiB into slices; here the same table, small."""
    w = np.arange(12, dtype="f4").reshape(3, 4)
    flat = w.reshape(-1)
    table = {"w": {"OriginShape": (3, 4), "slices": ["w@@.0", "w@@.1"]}}
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle.dumps({"w@@.0": flat[:8], "w@@.1": flat[8:], "b": np.ones(2, "f4"),
                                   "UnpackBigParamInfor@@": table}, protocol=2))
    state = safeload.load(path)
    same(paddle.load(str(path), return_numpy=True), state)
    assert list(state) == ["b", "w"] and np.array_equal(state["w"], w)


def arrays(state):
    return {k: np.asarray(v) for k, v in state.items() if k != "LR_Scheduler"}


def test_states_restore_through_set_state_dict(trained):
    """model.set_state_dict and optimizer.set_state_dict take the numpy arrays: a resumed run takes
    the same next step as the one that kept going, and a used optimizer gets the file's values."""
    folder, model, opt, names, x = trained
    saved = paddle.load(str(folder / "adam.pdopt"), return_numpy=True)
    with paddle.utils.unique_name.guard(paddle.base.unique_name.UniqueNameGenerator()):
        used_model, used_opt = small_model()
        train_step(used_model, used_opt, x + 1)
        used_opt.set_state_dict(safeload.load(folder / "adam.pdopt"))
        same(arrays(saved), arrays(used_opt.state_dict()))
        same(saved["LR_Scheduler"], used_opt.state_dict()["LR_Scheduler"])
    with paddle.utils.unique_name.guard(paddle.base.unique_name.UniqueNameGenerator()):
        model2, opt2 = small_model()  # a fresh optimizer, as when resuming: Paddle keeps the arrays
        model2.set_state_dict(safeload.load(folder / "model.pdparams"))  # until its first step
        opt2.set_state_dict(safeload.load(folder / "adam.pdopt"))
        train_step(model2, opt2, x)
    with paddle.utils.unique_name.guard(names):
        train_step(model, opt, x)
    same({k: v.numpy() for k, v in model.state_dict().items()}, {k: v.numpy() for k, v in model2.state_dict().items()})
    same(arrays(opt.state_dict()), arrays(opt2.state_dict()))
    same(opt.state_dict()["LR_Scheduler"], opt2.state_dict()["LR_Scheduler"])


# --------------------------------------------------------------------------- safetensors

def test_safetensors_round_trip(trained, tmp_path):
    folder, model = trained[0], trained[1]
    state = safeload.load(folder / "model.pdparams")
    safeload.save_safetensors(state, tmp_path / "model.safetensors")
    same(state, safeload.load(tmp_path / "model.safetensors"), ordered=False)  # safetensors sorts its keys
    safeload.save_safetensors(model.state_dict(), tmp_path / "from_tensors.safetensors")  # Tensors work too
    same({k: v.numpy() for k, v in model.state_dict().items()}, safeload.load(tmp_path / "from_tensors.safetensors"),
         ordered=False)
    os.rename(tmp_path / "model.safetensors", tmp_path / "model.bin")  # told apart by its first bytes
    same(state, safeload.load(tmp_path / "model.bin"), ordered=False)
    assert sorted(os.listdir(tmp_path)) == ["from_tensors.safetensors", "model.bin"]  # no temporary left


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_safetensors_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        safeload.save_safetensors({"w": np.ones(3, "f4")}, tmp_path / "w.safetensors")
        safeload.save_safetensors({"w": np.zeros(3, "f4")}, tmp_path / "w.safetensors")  # replacing it
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "w.safetensors").st_mode & 0o777 == 0o666 & ~umask
    same({"w": np.zeros(3, "f4")}, safeload.load(tmp_path / "w.safetensors"))


def test_safetensors_holds_arrays_only(trained, tmp_path):
    with pytest.raises(ValueError, match="'LR_Scheduler' is a dict, not an array"):
        safeload.save_safetensors(safeload.load(trained[0] / "adam.pdopt"), tmp_path / "adam.safetensors")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- every load path of the commands

def test_every_command_that_opens_weights_refuses_a_crafted_file(tmp_path, capsys):
    from core import checkpoint
    from core.errors import InputError
    from extractor.resnet import ResNet
    from extractor.weights import load_weights
    from sequence import yt8m

    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pdparams"
    with open(evil, "wb") as f:
        pickle.dump({"conv1_weights": touch(marker)}, f)
    evil_pickle = tmp_path / "train.pkl"
    with open(evil_pickle, "wb") as f:
        pickle.dump([{"video": "v", "feature": touch(marker)}], f)
    loaders = [lambda: load_weights(ResNet(50), str(evil)),  # --extractor_weights, --pretrain of TSN
               lambda: checkpoint.read_state(str(evil)),  # --weights, --pretrain, --resume
               lambda: list(yt8m.iter_pickle_videos([str(evil_pickle)]))]  # YouTube-8M pickles
    for load in loaders:
        with pytest.raises(InputError, match=r"(evil\.pdparams|train\.pkl) asks to call (os|posix)\.system: " + REFUSAL):
            load()
    assert not marker.exists()
