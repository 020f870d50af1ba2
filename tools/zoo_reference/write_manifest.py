"""Merge fluid_cases.json and paddlevideo_cases.json into manifest.json, listing every file of the
fixture folder with its size and sha256. Any Python 3:
    python3 tools/zoo_reference/write_manifest.py --out tests/fixtures/zoo
"""
import argparse
import hashlib
import json
import os

FILE_ROLES = {
    "model.pdparams": "fluid.save pickle {parameter name: float32 ndarray} (released-zoo layout)",
    "params": "fluid.io.save_params folder: one serialised LoDTensor per parameter, file name = parameter name",
    "io.npz": "inputs as the model consumes them, logits and probs (see cases.<case>.io)",
    "head.pdparams": "paddle.save(AttentionLstmHead.state_dict()) (Paddle 3 pickle, + 'StructuredToParameterName@@')",
    "recognizer.pdparams": "the same tensors keyed 'head.<key>', as in a PaddleVideo Recognizer1D checkpoint",
    "nextvlad_eigenvals.npy": "stand-in for yt8m_pca/eigenvals.npy: float64 [32, 1], seed 7",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/zoo")
    args = parser.parse_args()
    with open(os.path.join(args.out, "fluid_cases.json")) as handle:
        fluid_part = json.load(handle)
    with open(os.path.join(args.out, "paddlevideo_cases.json")) as handle:
        pv_part = json.load(handle)
    files, total = {}, 0
    for root, _, names in os.walk(args.out):
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, args.out)
            if rel in ("manifest.json", "fluid_cases.json", "paddlevideo_cases.json"):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            total += len(data)
            parts = rel.split(os.sep)
            role = FILE_ROLES.get(parts[1] if len(parts) > 2 and parts[1] == "params" else parts[-1], "")
            files[rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "role": role}
    manifest = {
        "about": "Golden fixtures of the PaddleCV video-zoo heads (fluid, Paddle 1.8.5) and of PaddleVideo 2.x "
                 "AttentionLstmHead (Paddle 3); made by tools/zoo_reference (see its README.md).",
        "common": {
            "num_classes": 7, "feature_dims": {"rgb": 24, "audio": 8}, "lengths": [5, 2, 7],
            "data_seed": 20240601,
            "data": "uint8 codes drawn with RandomState(data_seed): rgb of every video, then audio; float "
                    "features = codes * 4/255 + 4/512 - 2 (float64, then float32). Padded arrays are [B, 7, D], "
                    "zero after each video's length; mask [B, 7] float32.",
        },
        "io_keys": {
            "lengths": "int64 [B] frames per video",
            "mask": "float32 [B, 7] 1 on real frames",
            "<m>_uint8": "uint8 [B, 7, D] YouTube-8M codes, zero-padded",
            "<m>": "float32 [B, 7, D] dequantised codes, zero-padded (AttentionLSTM's LoD input, unpadded)",
            "sample_idx": "AttentionCluster: int64 [B, seg_num] frame picked by the zoo reader's rule",
            "<m>_sampled": "AttentionCluster: float32 [B, seg_num, D] what the model consumed",
            "rgb_scaled": "NeXtVLAD: float32 [B, 7, 24] (codes * 4/255 - 2) * eigen_param, what its first fc sees",
            "pooled_<m>": "per-modality branch output as fluid computes it: AttentionLSTM [B, 2H] attention pool "
                          "of the dropout-scaled (x0.5) LSTM outputs; AttentionCluster [B, C*F] shifted, normalised "
                          "clusters, cluster-major, before dropout; NeXtVLAD [B, K*fs] after the VLAD BatchNorm, "
                          "flattened feature-major (index f*K + k)",
            "logits": "float32 [B, 7]", "probs": "float32 [B, 7] sigmoid(logits)",
            "<m>_data / <m>_len / <m>_mask": "PaddleVideo: float32 [B, 9, D], int64 [B], float32 [B, 9, D]",
        },
        "fluid": fluid_part,
        "paddlevideo": pv_part,
        "files": files,
        "total_bytes": total,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    for name in ("fluid_cases.json", "paddlevideo_cases.json"):
        os.remove(os.path.join(args.out, name))
    print("files:", len(files), "bytes:", total)


if __name__ == "__main__":
    main()
