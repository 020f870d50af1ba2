"""Golden fixtures for VideoTag compatibility, produced on the real PaddlePaddle 1.8.5 runtime.

VideoTag (PaddleCV video_tag, later PaddleVideo applications/VideoTag) ran on fluid 1.8.
This script re-expresses the parts of it that decide numbers (reader, AttentionLSTM,
TSN ResNet-101 with VideoTag parameter names) with fluid ops, fills them with seeded random
weights, and writes the inputs and outputs so that the project can be checked against the
original runtime without the original weights.

How to run (from the repository root):

    /root/.pyenv/versions/3.8.18/bin/python -m venv /work/venvs/fluid-vt
    /work/venvs/fluid-vt/bin/pip install paddlepaddle==1.8.5 'numpy<1.20' protobuf==3.20.3
    # optional, for small test videos: apt-get install ffmpeg  (falls back to cv2 mp4v)
    /work/venvs/fluid-vt/bin/python tools/videotag_reference/make_fixtures.py \
        --out tests/fixtures/videotag --large-out /work/fixtures-large/videotag

    --skip-large   only the small (committed) fixtures
    --skip-tsn     no full-size ResNet-101 TSN run (the slowest part, ~1 min on one core)

Everything is seeded; re-running rewrites the same numbers (the mp4 files depend on the
encoder that made them, see manifest.json "video_encoder").
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("CPU_NUM", "1")

import numpy as np  # noqa: E402
import cv2  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402
import paddle  # noqa: E402
import paddle.fluid as fluid  # noqa: E402
from paddle.fluid import ParamAttr  # noqa: E402

PLACE = fluid.CPUPlace()

# ImageNet statistics used by VideoTag's tsn.yaml (MODEL.image_mean / image_std)
IMAGE_MEAN = [0.485, 0.456, 0.406]
IMAGE_STD = [0.229, 0.224, 0.225]
SHORT_SIZE = 256     # tsn.yaml *.short_size
TARGET_SIZE = 224    # tsn.yaml *.target_size


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def describe_arrays(arrays):
    return {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
            for k, v in arrays.items()}


def save_npz(path, arrays):
    np.savez_compressed(path, **arrays)
    return describe_arrays(arrays)


def set_param(scope, name, value):
    tensor = scope.find_var(name).get_tensor()
    assert tuple(np.array(tensor).shape) == tuple(value.shape), (name, value.shape)
    tensor.set(np.ascontiguousarray(value, dtype=np.float32), PLACE)


def fluid_save_params(program, prefix):
    """fluid.save writes .pdparams (pickled {name: ndarray}), .pdopt and .pdmodel; the
    released VideoTag files are only the .pdparams part, so keep that one."""
    fluid.save(program, prefix)
    for ext in (".pdopt", ".pdmodel"):
        if os.path.exists(prefix + ext):
            os.remove(prefix + ext)
    return prefix + ".pdparams"


# ----------------------------------------------------------------------------------------
# (a) test videos and VideoTag's infer/test reader path
# ----------------------------------------------------------------------------------------
# name, width, height, frames, seg_num
VIDEOS = [
    ("wide_640x360", 640, 360, 16, 4),      # 16:9 landscape, downscaled to 341x256
    ("square_400x400", 400, 400, 14, 4),    # square goes to the landscape branch
    ("classic_320x240", 320, 240, 12, 4),   # 4:3, upscaled to 341x256
    ("portrait_360x640", 360, 640, 16, 4),  # portrait -> 256x341
    ("odd_322x182", 322, 182, 13, 4),       # unusual size, upscaled
    ("short256_456x256", 456, 256, 10, 4),  # short side already 256: NOT resized at all
    ("few_320x180_6f", 320, 180, 6, 8),     # fewer frames than seg_num: index wraps (i mod n)
]


def synth_frame(w, h, t, palette):
    """RGB uint8 frame: flat colour tiles (hard edges), a horizontal ramp, a band of thin
    diagonal stripes and a moving disc. Flat areas keep the files small, the edges and
    stripes make the resampling filter visible."""
    yy, xx = np.mgrid[0:h, 0:w]
    tiles = ((xx // 37) * 7 + (yy // 29) * 3) % len(palette)
    img = palette[tiles].astype(np.float32)
    ramp_rows = yy < int(h * 0.12)
    ramp = np.repeat((xx * 255.0 / max(w - 1, 1))[..., None], 3, axis=2)
    img[ramp_rows] = ramp[ramp_rows]
    band = (yy > h * 0.6) & (yy < h * 0.75)
    stripes = band & (((xx + yy + 3 * t) // 9) % 2 == 0)
    img[stripes] = (250, 250, 250)
    cx, cy, rad = w * (0.2 + 0.04 * t), h * 0.45, min(w, h) * 0.18
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < rad ** 2
    img[disc] = (240, 40, 60)
    return img.astype(np.uint8)


def write_video(path, frames, fps=25):
    h, w = frames[0].shape[:2]
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", "%dx%d" % (w, h), "-r", str(fps), "-i", "-",
               "-c:v", "mpeg4", "-q:v", "10", "-g", "100", "-pix_fmt", "yuv420p", "-vtag", "mp4v",
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-an", path]
        subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
        return "ffmpeg mpeg4 (mp4v) -q:v 10 -g 100 yuv420p"
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return "cv2.VideoWriter mp4v"


def decode_like_videotag(path):
    """VideoTag's mp4 loader: ask cv2 for CAP_PROP_FRAME_COUNT, call read() that many
    times, drop failed reads, keep every frame in memory, BGR -> RGB."""
    cap = cv2.VideoCapture(path)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for _ in range(count):
        ok, bgr = cap.read()
        if not ok:
            continue
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    return count, frames


def test_mode_indices(num_frames, seg_num, seglen=1):
    """Centre-of-segment sampling of VideoTag's valid/test/infer modes."""
    seg_len = num_frames // seg_num
    out = []
    for i in range(seg_num):
        if seg_len >= seglen:
            start = (seg_len - 1) // 2 + i * seg_len
        elif seg_len >= 1:   # only reachable when seglen > 1
            start = i * seg_len
        else:
            start = i
        out.extend((j % num_frames) for j in range(start, start + seglen))
    return out


def fixed_ratio_size(w, h, short=SHORT_SIZE):
    """Target (width, height) of VideoTag's group_scale, or None when it keeps the frame."""
    if (w <= h and w == short) or (h <= w and h == short):
        return None
    long_side = int(short * 4.0 / 3.0)
    return (short, long_side) if w < h else (long_side, short)


def centre_offsets(h, w, size=TARGET_SIZE):
    # Python 3 round(): halves go to the even neighbour (58.5 -> 58)
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def normalise(crops_uint8):
    """[N,H,W,3] uint8 -> [N,3,H,W] float32 exactly as VideoTag does it (float32 steps)."""
    x = crops_uint8.astype("float32").transpose(0, 3, 1, 2) / 255
    x -= np.array(IMAGE_MEAN).reshape([3, 1, 1]).astype(np.float32)
    x /= np.array(IMAGE_STD).reshape([3, 1, 1]).astype(np.float32)
    return x


def make_reader_fixtures(out_dir, seed):
    vid_dir = os.path.join(out_dir, "videos")
    os.makedirs(vid_dir, exist_ok=True)
    palette = np.random.RandomState(seed).randint(0, 256, (64, 3))
    entries, crops_by_name, encoder = {}, {}, None
    for name, w, h, n, seg_num in VIDEOS:
        path = os.path.join(vid_dir, name + ".mp4")
        encoder = write_video(path, [synth_frame(w, h, t, palette) for t in range(n)])
        count, frames = decode_like_videotag(path)
        idx = test_mode_indices(len(frames), seg_num)
        size = fixed_ratio_size(w, h)
        crops, shas = [], []
        for i in idx:
            frame = frames[i]
            shas.append(hashlib.sha256(frame.tobytes()).hexdigest())
            img = Image.fromarray(frame, mode="RGB")
            if size is not None:
                img = img.resize(size, Image.BILINEAR)
            arr = np.asarray(img)
            rh, rw = arr.shape[:2]
            h_off, w_off = centre_offsets(rh, rw)
            crops.append(arr[h_off:h_off + TARGET_SIZE, w_off:w_off + TARGET_SIZE])
        crops = np.stack(crops)
        arrays = {
            "indices": np.array(idx, dtype=np.int64),
            "crops": crops,                       # uint8 [seg_num,224,224,3] RGB, pre-normalisation
            "frame0": frames[idx[0]],             # decoded RGB frame of the first segment
            "decoded_size_hw": np.array([h, w], dtype=np.int64),
            "resized_size_hw": np.array([rh, rw], dtype=np.int64),
            "crop_offset_hw": np.array([h_off, w_off], dtype=np.int64),
            "num_frames": np.array(len(frames), dtype=np.int64),
        }
        npz = os.path.join(out_dir, "reader_%s.npz" % name)
        entries["reader_%s.npz" % name] = {
            "what": "VideoTag test/infer reader on the video: sampled frame indices, decoded RGB "
                    "frame of the first segment, and the uint8 RGB 224x224 centre crops (HWC, "
                    "before /255 and mean/std) of every segment",
            "video": "videos/%s.mp4" % name,
            "video_bytes": os.path.getsize(path),
            "frames_written": n, "cap_prop_frame_count": count, "frames_decoded": len(frames),
            "seg_num": seg_num, "sampled_frame_sha256": shas,
            "arrays": save_npz(npz, arrays),
        }
        crops_by_name[name] = crops
        print("video %-20s %dx%d n=%d idx=%s resized=%dx%d off=(%d,%d)" %
              (name, w, h, len(frames), idx, rw, rh, h_off, w_off))
    return entries, crops_by_name, encoder


# ----------------------------------------------------------------------------------------
# (c) dynamic_lstm: numpy re-implementation and a small fixture
# ----------------------------------------------------------------------------------------
GATE_ORDER = ("candidate", "input", "forget", "output")   # column blocks of w_0 / input / b_0[:4H]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_dynamic_lstm(x, lengths, w, b, reverse=False, out_peephole_on_new_cell=True):
    """x [sum T, 4H] (already projected), w [H, 4H], b [1, 7H]; zero initial state.
    Blocks of 4H: candidate, input, forget, output. b[0, 4H:7H] = peepholes W_ic, W_fc, W_oc."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    b = b.astype(np.float64)[0]
    hsz = w.shape[0]
    gate_bias = b[:4 * hsz]
    w_ic, w_fc, w_oc = b[4 * hsz:5 * hsz], b[5 * hsz:6 * hsz], b[6 * hsz:7 * hsz]
    hidden = np.zeros((x.shape[0], hsz))
    cell = np.zeros((x.shape[0], hsz))
    start = 0
    for length in lengths:
        steps = range(start, start + length)
        if reverse:
            steps = reversed(list(steps))
        h_prev = np.zeros(hsz)
        c_prev = np.zeros(hsz)
        for t in steps:
            z = x[t] + h_prev @ w + gate_bias
            cand = np.tanh(z[0:hsz])
            i_g = _sigmoid(z[hsz:2 * hsz] + w_ic * c_prev)
            f_g = _sigmoid(z[2 * hsz:3 * hsz] + w_fc * c_prev)
            c_new = f_g * c_prev + i_g * cand
            o_g = _sigmoid(z[3 * hsz:4 * hsz] + w_oc * (c_new if out_peephole_on_new_cell else c_prev))
            h_new = o_g * np.tanh(c_new)
            hidden[t], cell[t] = h_new, c_new
            h_prev, c_prev = h_new, c_new
        start += length
    return hidden, cell


def lod_tensor(x, lengths):
    return fluid.create_lod_tensor(np.ascontiguousarray(x, dtype=np.float32), [list(lengths)], PLACE)


def make_dynamic_lstm_fixture(out_dir, seed):
    hsz, lengths = 6, [4, 7, 1, 3]
    rng = np.random.RandomState(seed)
    x = rng.randn(sum(lengths), 4 * hsz).astype(np.float32)
    w = (rng.randn(hsz, 4 * hsz) * 0.6).astype(np.float32)
    b = (rng.randn(1, 7 * hsz) * 0.6).astype(np.float32)
    main, startup, scope = fluid.Program(), fluid.Program(), fluid.Scope()
    with fluid.scope_guard(scope), fluid.program_guard(main, startup), fluid.unique_name.guard():
        inp = fluid.data(name="x", shape=[None, 4 * hsz], dtype="float32", lod_level=1)
        h_f, c_f = fluid.layers.dynamic_lstm(inp, 4 * hsz, is_reverse=False, name="lstm_fwd")
        h_r, c_r = fluid.layers.dynamic_lstm(inp, 4 * hsz, is_reverse=True, name="lstm_rev")
        exe = fluid.Executor(PLACE)
        exe.run(startup)
        for prefix in ("lstm_fwd", "lstm_rev"):
            set_param(scope, prefix + ".w_0", w)
            set_param(scope, prefix + ".b_0", b)
        outs = exe.run(main, feed={"x": lod_tensor(x, lengths)},
                       fetch_list=[h_f, c_f, h_r, c_r], return_numpy=False)
        outs = [np.array(o) for o in outs]
    ref = list(np_dynamic_lstm(x, lengths, w, b)) + list(np_dynamic_lstm(x, lengths, w, b, reverse=True))
    err = max(float(np.abs(a - r).max()) for a, r in zip(outs, ref))
    # evidence for the alternatives that do NOT match
    alt_prev = list(np_dynamic_lstm(x, lengths, w, b, out_peephole_on_new_cell=False))
    err_alt_prev = max(float(np.abs(a - r).max()) for a, r in zip(outs[:2], alt_prev))
    import itertools
    alt_orders = []
    for perm in itertools.permutations(range(4)):
        if perm == (0, 1, 2, 3):
            continue
        cols = np.concatenate([np.arange(p * hsz, (p + 1) * hsz) for p in perm])
        bp = b.copy()
        bp[0, :4 * hsz] = b[0, cols]
        hh, cc = np_dynamic_lstm(x[:, cols], lengths, w[:, cols], bp)
        alt_orders.append(float(max(np.abs(outs[0] - hh).max(), np.abs(outs[1] - cc).max())))
    arrays = {"lengths": np.array(lengths, dtype=np.int64), "x": x, "w_0": w, "b_0": b,
              "hidden_forward": outs[0], "cell_forward": outs[1],
              "hidden_reverse": outs[2], "cell_reverse": outs[3]}
    entry = {
        "what": "fluid.layers.dynamic_lstm (use_peepholes=True, sigmoid/tanh/tanh, zero initial "
                "state) on a LoD batch: input x is the already projected [sum T, 4H]; outputs of "
                "is_reverse=False and is_reverse=True with the same w_0/b_0",
        "hidden_size": hsz, "seed": seed,
        "gate_order_in_w0_and_input": list(GATE_ORDER),
        "b0_layout": ["b_candidate", "b_input", "b_forget", "b_output", "W_ic", "W_fc", "W_oc"],
        "max_abs_err_numpy_vs_fluid": err,
        "max_abs_err_if_output_peephole_used_c_prev": err_alt_prev,
        "min_max_abs_err_over_other_23_gate_orders": min(alt_orders),
        "arrays": save_npz(os.path.join(out_dir, "dynamic_lstm.npz"), arrays),
    }
    print("dynamic_lstm: numpy vs fluid max err %.3g (c_prev peephole: %.3g, other orders >= %.3g)"
          % (err, err_alt_prev, min(alt_orders)))
    return entry


# ----------------------------------------------------------------------------------------
# (b) AttentionLSTM with VideoTag's parameter names
# ----------------------------------------------------------------------------------------
def _bias_no_l2():
    return ParamAttr(regularizer=fluid.regularizer.L2Decay(0.0),
                     initializer=fluid.initializer.NormalInitializer(scale=0.0))


def build_attention_lstm(feature_dim, embedding_size, lstm_size, fc1_size, fc2_size,
                         num_classes, drop_rate=0.5):
    """Inference graph of VideoTag's AttentionLSTM (one modality, 'rgb'). VideoTag hard-codes
    fc1_size=8192 and fc2_size=4096; here they are arguments."""
    rgb = fluid.data(name="rgb", shape=[None, feature_dim], dtype="float32", lod_level=1)
    emb = fluid.layers.fc(rgb, embedding_size, act="tanh", bias_attr=_bias_no_l2(), name="rgb_fc")
    proj_f = fluid.layers.fc(emb, 4 * lstm_size, act=None, bias_attr=False, name="rgb_fc_forward")
    h_f, _ = fluid.layers.dynamic_lstm(proj_f, 4 * lstm_size, is_reverse=False, name="rgb_lstm_forward")
    proj_b = fluid.layers.fc(emb, 4 * lstm_size, act=None, bias_attr=False, name="rgb_fc_backward")
    h_b, _ = fluid.layers.dynamic_lstm(proj_b, 4 * lstm_size, is_reverse=True, name="rgb_lstm_backward")
    both = fluid.layers.concat([h_f, h_b], axis=1)
    dropped = fluid.layers.dropout(both, dropout_prob=drop_rate, is_test=True)
    att = fluid.layers.fc(dropped, 1, act="sequence_softmax", bias_attr=False, name="rgb_weight")
    weighted = fluid.layers.elementwise_mul(dropped, att, axis=0)
    pooled = fluid.layers.sequence_pool(weighted, pool_type="sum")
    fc1 = fluid.layers.fc(pooled, fc1_size, act="relu", bias_attr=_bias_no_l2(), name="fc1")
    fc2 = fluid.layers.fc(fc1, fc2_size, act="tanh", bias_attr=_bias_no_l2(), name="fc2")
    logit = fluid.layers.fc(fc2, num_classes, act=None, bias_attr=_bias_no_l2(), name="output")
    prob = fluid.layers.sigmoid(logit)
    return {"embedding": emb, "lstm_forward": h_f, "lstm_backward": h_b, "attention": att,
            "pooled": pooled, "fc1": fc1, "fc2": fc2, "logits": logit, "probs": prob}


def random_attention_lstm_params(program, rng):
    params = {}
    for p in program.global_block().all_parameters():
        shape = tuple(p.shape)
        if p.name.endswith(".b_0") and "lstm" in p.name:
            # 4 gate biases and 3 peephole vectors, all deliberately non-zero
            val = rng.randn(*shape) * 0.5
        elif p.name.endswith(".b_0"):
            val = rng.randn(*shape) * 0.1
        elif p.name == "rgb_weight.w_0":
            val = rng.randn(*shape) * 8.0 / np.sqrt(shape[0])   # a peaked attention
        elif p.name in ("fc1.w_0", "fc2.w_0"):
            val = rng.randn(*shape) * 2.0 / np.sqrt(shape[0])
        elif p.name == "output.w_0":
            val = rng.randn(*shape) * 4.0 / np.sqrt(shape[0])   # logits spread over ~[-5, 5]
        else:
            val = rng.randn(*shape) / np.sqrt(shape[0])
        params[p.name] = val.astype(np.float32)
    return params


def np_attention_lstm(seqs, P, drop_rate=0.5):
    """float64 numpy forward of the graph above, for checking the runtime."""
    lengths = [len(s) for s in seqs]
    x = np.concatenate(seqs).astype(np.float64)
    emb = np.tanh(x @ P["rgb_fc.w_0"] + P["rgb_fc.b_0"])
    h_f, _ = np_dynamic_lstm(emb @ P["rgb_fc_forward.w_0"], lengths,
                             P["rgb_lstm_forward.w_0"], P["rgb_lstm_forward.b_0"])
    h_b, _ = np_dynamic_lstm(emb @ P["rgb_fc_backward.w_0"], lengths,
                             P["rgb_lstm_backward.w_0"], P["rgb_lstm_backward.b_0"], reverse=True)
    feats = np.concatenate([h_f, h_b], axis=1) * (1.0 - drop_rate)   # downgrade_in_infer
    scores = (feats @ P["rgb_weight.w_0"])[:, 0]
    pooled, start = [], 0
    for n in lengths:
        s = scores[start:start + n]
        a = np.exp(s - s.max())
        a /= a.sum()
        pooled.append((feats[start:start + n] * a[:, None]).sum(0))
        start += n
    pooled = np.stack(pooled)
    fc1 = np.maximum(pooled @ P["fc1.w_0"] + P["fc1.b_0"], 0.0)
    fc2 = np.tanh(fc1 @ P["fc2.w_0"] + P["fc2.b_0"])
    logits = fc2 @ P["output.w_0"] + P["output.b_0"]
    return logits, _sigmoid(logits)


def make_attention_lstm_fixture(out_dir, sizes, lengths, seed, prefix="attention_lstm",
                                io_name="attention_lstm_io.npz", keep_intermediates=True):
    rng = np.random.RandomState(seed)
    main, startup, scope = fluid.Program(), fluid.Program(), fluid.Scope()
    with fluid.scope_guard(scope), fluid.program_guard(main, startup), fluid.unique_name.guard():
        outs = build_attention_lstm(**sizes)
        exe = fluid.Executor(PLACE)
        exe.run(startup)
        params = random_attention_lstm_params(main, rng)
        for name, val in params.items():
            set_param(scope, name, val)
        seqs = [rng.gamma(1.0, 0.5, size=(n, sizes["feature_dim"])).astype(np.float32) for n in lengths]
        keys = list(outs.keys()) if keep_intermediates else ["logits", "probs"]
        fetched = exe.run(main, feed={"rgb": lod_tensor(np.concatenate(seqs), lengths)},
                          fetch_list=[outs[k] for k in keys], return_numpy=False)
        fetched = {k: np.array(v) for k, v in zip(keys, fetched)}
        pdparams = fluid_save_params(main, os.path.join(out_dir, prefix))
    ref_logits, ref_probs = np_attention_lstm(seqs, params, sizes.get("drop_rate", 0.5))
    _, probs_no_scale = np_attention_lstm(seqs, params, 0.0)
    arrays = {"lengths": np.array(lengths, dtype=np.int64),
              "features_concat": np.concatenate(seqs)}
    for i, s in enumerate(seqs):
        arrays["feature_%d" % i] = s
    for k, v in fetched.items():
        arrays[k] = v
    entry = {
        "what": "inference of VideoTag's AttentionLSTM graph (is_test) on a LoD batch; feature_i "
                "[T_i, D] inputs (also concatenated), outputs logits/probs [B, C] and the "
                "intermediates: embedding (tanh fc), lstm_forward/lstm_backward (LSTM hidden "
                "outputs before the dropout scaling), attention (sequence_softmax weights, "
                "[sum T, 1]), pooled (sum_t a_t * 0.5 * [h_f, h_b]), fc1 (relu), fc2 (tanh)",
        "sizes": sizes, "seed": seed, "lengths": list(lengths),
        "pdparams": os.path.basename(pdparams),
        "pdparams_bytes": os.path.getsize(pdparams),
        "param_shapes": {p.name: list(p.shape) for p in main.global_block().all_parameters()},
        "max_abs_err_numpy_vs_fluid_logits": float(np.abs(ref_logits - fetched["logits"]).max()),
        "max_abs_err_numpy_vs_fluid_probs": float(np.abs(ref_probs - fetched["probs"]).max()),
        "max_abs_change_of_probs_without_dropout_scaling": float(np.abs(probs_no_scale - fetched["probs"]).max()),
        "arrays": save_npz(os.path.join(out_dir, io_name), arrays),
    }
    print("AttentionLSTM %s: numpy vs fluid max err logits %.3g probs %.3g" %
          (sizes, entry["max_abs_err_numpy_vs_fluid_logits"], entry["max_abs_err_numpy_vs_fluid_probs"]))
    return entry


# ----------------------------------------------------------------------------------------
# (d) TSN ResNet-101 with VideoTag's static parameter names
# ----------------------------------------------------------------------------------------
def _conv_bn(x, filters, ksize, stride, act, name, is_test=True):
    conv = fluid.layers.conv2d(x, num_filters=filters, filter_size=ksize, stride=stride,
                               padding=(ksize - 1) // 2, act=None,
                               param_attr=ParamAttr(name=name + "_weights"), bias_attr=False)
    bn = "bn_" + name if name == "conv1" else "bn" + name[3:]
    return fluid.layers.batch_norm(conv, act=act, is_test=is_test,
                                   param_attr=ParamAttr(name=bn + "_scale"),
                                   bias_attr=ParamAttr(name=bn + "_offset"),
                                   moving_mean_name=bn + "_mean",
                                   moving_variance_name=bn + "_variance")


def _bottleneck(x, filters, stride, name):
    y = _conv_bn(x, filters, 1, 1, "relu", name + "_branch2a")
    y = _conv_bn(y, filters, 3, stride, "relu", name + "_branch2b")
    y = _conv_bn(y, filters * 4, 1, 1, None, name + "_branch2c")
    if x.shape[1] != filters * 4 or stride != 1:
        x = _conv_bn(x, filters * 4, 1, stride, None, name + "_branch1")
    return fluid.layers.elementwise_add(x, y, act="relu")


def build_tsn_resnet101(seg_num, num_classes=400):
    image = fluid.data(name="image", shape=[None, seg_num, 3, TARGET_SIZE, TARGET_SIZE], dtype="float32")
    x = fluid.layers.reshape(image, [-1, 3, TARGET_SIZE, TARGET_SIZE])
    x = _conv_bn(x, 64, 7, 2, "relu", "conv1")
    x = fluid.layers.pool2d(x, pool_size=3, pool_stride=2, pool_padding=1, pool_type="max")
    for stage, (blocks, filters) in enumerate(zip([3, 4, 23, 3], [64, 128, 256, 512])):
        for i in range(blocks):
            if stage == 2:
                name = "res4a" if i == 0 else "res4b%d" % i
            else:
                name = "res%d%s" % (stage + 2, chr(ord("a") + i))
            x = _bottleneck(x, filters, 2 if (i == 0 and stage > 0) else 1, name)
    pool = fluid.layers.pool2d(x, pool_size=7, pool_type="avg", global_pooling=True)
    features = fluid.layers.reshape(pool, [-1, seg_num, pool.shape[1]])
    # the fine-tuning head (absent when VideoTag extracts features)
    mean = fluid.layers.reduce_mean(features, dim=1)
    stdv = 1.0 / np.sqrt(float(pool.shape[1]))
    probs = fluid.layers.fc(mean, num_classes, act="softmax",
                            param_attr=ParamAttr(initializer=fluid.initializer.Uniform(-stdv, stdv)))
    return features, probs


def random_tsn_params(program, rng):
    params = {}
    for p in program.global_block().all_parameters():
        shape = tuple(p.shape)
        n = p.name
        if n.endswith("_weights"):
            fan_in = int(np.prod(shape[1:]))
            val = rng.randn(*shape) * np.sqrt(2.0 / fan_in)
        elif n.endswith("_scale"):
            lo, hi = (0.1, 0.3) if "branch2c" in n else (0.6, 1.2)
            val = rng.uniform(lo, hi, size=shape)
        elif n.endswith("_offset"):
            val = rng.randn(*shape) * 0.1
        elif n.endswith("_mean"):
            val = rng.randn(*shape) * 0.1
        elif n.endswith("_variance"):
            val = rng.uniform(0.5, 2.0, size=shape)
        elif n == "fc_0.w_0":
            stdv = 1.0 / np.sqrt(shape[0])
            val = rng.uniform(-stdv, stdv, size=shape)
        elif n == "fc_0.b_0":
            val = rng.randn(*shape) * 0.01
        else:
            raise ValueError("unexpected parameter %s" % n)
        params[n] = val.astype(np.float32)
    return params


def make_tsn_fixture(large_dir, crops_by_name, videos, seed):
    seg_num = len(crops_by_name[videos[0]])
    image = np.stack([normalise(crops_by_name[v]) for v in videos])   # [B, seg, 3, 224, 224]
    rng = np.random.RandomState(seed)
    main, startup, scope = fluid.Program(), fluid.Program(), fluid.Scope()
    with fluid.scope_guard(scope), fluid.program_guard(main, startup), fluid.unique_name.guard():
        features, probs = build_tsn_resnet101(seg_num)
        exe = fluid.Executor(PLACE)
        exe.run(startup)
        params = random_tsn_params(main, rng)
        for name, val in params.items():
            set_param(scope, name, val)
        feats, pr = exe.run(main, feed={"image": image}, fetch_list=[features, probs])
        pdparams = fluid_save_params(main, os.path.join(large_dir, "tsn"))
    arrays = {"image": image, "features": feats, "probs": pr,
              "videos": np.array(videos)}
    entry = {
        "what": "VideoTag-named TSN ResNet-101 (random weights, BatchNorm far from identity, "
                "is_test) run on the normalised crops of the committed reader fixtures; image "
                "[B, seg, 3, 224, 224] float32, features [B, seg, 2048] (the extractor output), "
                "probs [B, 400] (fine-tuning head: segment mean -> fc_0 -> softmax)",
        "seed": seed, "seg_num": seg_num, "videos": videos,
        "pdparams": os.path.basename(pdparams), "pdparams_bytes": os.path.getsize(pdparams),
        "num_params": len(params),
        "feature_stats": {"min": float(feats.min()), "max": float(feats.max()),
                          "mean": float(feats.mean()), "frac_zero": float((feats == 0).mean())},
        "arrays": save_npz(os.path.join(large_dir, "tsn_io.npz"), arrays),
    }
    print("TSN features", feats.shape, entry["feature_stats"])
    return entry


# ----------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/videotag")
    ap.add_argument("--large-out", default="/work/fixtures-large/videotag")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-tsn", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    versions = {"python": sys.version.split()[0], "paddlepaddle": paddle.__version__,
                "numpy": np.__version__, "opencv": cv2.__version__, "Pillow": PIL.__version__}
    manifest = {
        "about": "Golden fixtures from PaddlePaddle 1.8.5 (fluid) re-expressing VideoTag; "
                 "made by tools/videotag_reference/make_fixtures.py. See tools/videotag_reference/README.md.",
        "versions": versions,
        "normalisation": "x = ((crop_uint8.astype(float32).transpose(0,3,1,2) / 255) - mean) / std, "
                         "float32, mean %s std %s (RGB)" % (IMAGE_MEAN, IMAGE_STD),
        "reader_rules": {
            "decode": "cv2.VideoCapture, read() CAP_PROP_FRAME_COUNT times, failed reads dropped, BGR->RGB",
            "sampling": "n = decoded frames, seg = n // seg_num; seg >= 1: idx_i = (seg-1)//2 + i*seg; "
                        "seg == 0: idx_i = i; every index taken mod n",
            "resize": "PIL Image.resize(size, Image.BILINEAR); kept as is when the short side is already "
                      "256; else width < height -> (256, 341), otherwise (square too) -> (341, 256)",
            "crop": "h_off = int(round((H-224)/2.)), w_off likewise; Python 3 round (58.5 -> 58)",
        },
        "video_fps": 25,
        "files": {},
    }
    reader_entries, crops, encoder = make_reader_fixtures(args.out, seed=0)
    manifest["video_encoder"] = encoder
    manifest["files"].update(reader_entries)
    manifest["files"]["dynamic_lstm.npz"] = make_dynamic_lstm_fixture(args.out, seed=1)
    small = dict(feature_dim=64, embedding_size=32, lstm_size=16, fc1_size=48, fc2_size=40,
                 num_classes=10, drop_rate=0.5)
    entry = make_attention_lstm_fixture(args.out, small, [5, 9, 3, 12], seed=2)
    manifest["files"]["attention_lstm.pdparams"] = dict(
        what="fluid.save output (.pdparams only) of the small AttentionLSTM: a pickle (protocol 2) "
             "of {parameter name: float32 ndarray}, same names and layout as VideoTag's released "
             "attention_lstm.pdparams; fc biases are 1-D [N], LSTM b_0 is [1, 7H]",
        **{k: entry[k] for k in ("sizes", "seed", "pdparams_bytes", "param_shapes")})
    manifest["files"]["attention_lstm_io.npz"] = entry
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)

    if args.skip_large:
        return
    os.makedirs(args.large_out, exist_ok=True)
    large_manifest = {"versions": versions, "files": {}}
    full = dict(feature_dim=2048, embedding_size=1024, lstm_size=512, fc1_size=8192, fc2_size=4096,
                num_classes=3396, drop_rate=0.5)
    entry = make_attention_lstm_fixture(args.large_out, full, [5, 9, 3, 12, 300], seed=3,
                                        keep_intermediates=True)
    large_manifest["files"]["attention_lstm.pdparams + attention_lstm_io.npz"] = entry
    if not args.skip_tsn:
        large_manifest["files"]["tsn.pdparams + tsn_io.npz"] = make_tsn_fixture(
            args.large_out, crops, ["wide_640x360", "portrait_360x640"], seed=4)
    with open(os.path.join(args.large_out, "manifest.json"), "w") as f:
        json.dump(large_manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
