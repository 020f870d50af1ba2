"""Write the pickled weights fixtures of tests/fixtures/pickles (see the README there).

One run per kind, each in the environment that writes it (none of them is needed by CI):
    /work/venvs/fluid-sl/bin/python tools/make_pickle_fixtures.py fluid18    # PaddlePaddle 1.8.5, Python 3.8
    /work/venvs/p26/bin/python tools/make_pickle_fixtures.py paddle26        # PaddlePaddle 2.6.2, numpy 1.26
    PYTHONPATH=/work/venvs/py27np python2.7 tools/make_pickle_fixtures.py yt8m-py2   # numpy 1.16
Python 2 syntax on purpose (no f-strings): the yt8m-py2 kind runs on Python 2.7.
"""
import os
import pickle
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "pickles")


def fluid18(out):
    """fluid.save of a static program (fc + batch_norm, one Adam step), and save_dygraph."""
    import paddle.fluid as fluid

    main, startup = fluid.Program(), fluid.Program()
    main.random_seed = startup.random_seed = 1
    with fluid.program_guard(main, startup):
        x = fluid.data("x", [None, 4], "float32")
        loss = fluid.layers.reduce_mean(fluid.layers.batch_norm(fluid.layers.fc(x, 3)))
        fluid.optimizer.Adam(0.01).minimize(loss)
    exe = fluid.Executor(fluid.CPUPlace())
    exe.run(startup)
    exe.run(main, feed={"x": np.random.RandomState(0).rand(5, 4).astype("float32")}, fetch_list=[loss])
    fluid.save(main, os.path.join(out, "fluid18_static"))
    os.remove(os.path.join(out, "fluid18_static.pdmodel"))  # a ProgramDesc protobuf, not a pickle
    with fluid.dygraph.guard():
        lin, bn = fluid.dygraph.Linear(4, 3), fluid.dygraph.BatchNorm(3)
        opt = fluid.optimizer.Adam(0.01, parameter_list=lin.parameters() + bn.parameters())
        loss = fluid.layers.reduce_mean(bn(lin(fluid.dygraph.to_variable(np.ones((2, 4), "float32")))))
        loss.backward()
        opt.minimize(loss)
        state = lin.state_dict()
        state.update(bn.state_dict())
        fluid.dygraph.save_dygraph(state, os.path.join(out, "fluid18_dygraph"))
        fluid.dygraph.save_dygraph(opt.state_dict(), os.path.join(out, "fluid18_dygraph"))


def paddle26(out):
    """paddle.save of a state dict, an Adam state after one step, and checkpoints nesting them."""
    import paddle

    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.BatchNorm1D(3))
    opt = paddle.optimizer.Adam(parameters=model.parameters(),
                                learning_rate=paddle.optimizer.lr.StepDecay(0.1, step_size=2))
    model(paddle.randn([5, 4])).mean().backward()
    opt.step()
    path = lambda name: os.path.join(out, "paddle26_" + name)  # noqa: E731
    paddle.save(model.state_dict(), path("model.pdparams"))
    paddle.save(model.state_dict(), path("protocol2.pdparams"), protocol=2)
    paddle.save(opt.state_dict(), path("adam.pdopt"))
    paddle.save({"optimizer": opt.state_dict(), "trainer": {"epoch": 3, "examples_seen": 10, "best": 0.5}},
                path("checkpoint.pdckpt"))
    paddle.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, path("nested.pdckpt"))


def yt8m_py2(out):
    """The YouTube-8M reference pickle layout (PaddleVideo data/yt8m/tf2pkl.py): a list of dicts, protocol 2."""
    rng = np.random.RandomState(0)
    items = []
    for i, frames in enumerate((2, 1)):
        items.append({"video": "vid%d" % i, "feature": rng.randint(0, 256, (frames, 1024)).astype(np.uint8),
                      "audio": rng.randint(0, 256, (frames, 128)).astype(np.uint8),
                      "label": [i, 7], "nframes": np.int32(frames)})
    with open(os.path.join(out, "yt8m_py2.pkl"), "wb") as f:
        pickle.dump(items, f, protocol=2)


if __name__ == "__main__":
    kinds = {"fluid18": fluid18, "paddle26": paddle26, "yt8m-py2": yt8m_py2}
    if len(sys.argv) != 2 or sys.argv[1] not in kinds:
        sys.exit("usage: make_pickle_fixtures.py " + "|".join(kinds))
    if not os.path.isdir(OUT):
        os.makedirs(OUT)
    kinds[sys.argv[1]](OUT)
