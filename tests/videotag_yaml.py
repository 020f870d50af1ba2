"""VideoTag's four configs (PaddleCV video_tag == PaddleVideo applications/VideoTag), written from the
keys and values recorded in the reference facts, in VideoTag's own spelling (`1e-4`, `None`, `True`)."""

ATTENTION_LSTM = """\
MODEL:
    name: "AttentionLSTM"
    dataset: "YouTube-8M"
    bone_nework: None
    drop_rate: 0.5
    feature_names: ['rgb']
    feature_dims: [2048]
    embedding_size: 1024
    lstm_size: 512
    num_classes: 3396
    topk: 20

TRAIN:
    epoch: 10
    learning_rate: {learning_rate}
    decay_epochs: [5]
    decay_gamma: 0.1
    weight_decay: 0.0008
    num_samples: 5000000
    pretrain_base: None
    batch_size: {train_batch}
    use_gpu: True
    num_gpus: {num_gpus}
    filelist: "data/dataset/attention_lstm/train.list"

VALID:
    batch_size: {train_batch}
    filelist: "data/dataset/attention_lstm/val.list"

TEST:
    batch_size: 128
    filelist: "data/dataset/attention_lstm/test.list"

INFER:
    batch_size: 1
    filelist: "data/dataset/attention_lstm/infer.list"
"""

TSN = """\
MODEL:
    name: "TSN"
    format: "video"
    num_classes: 400
    seglen: 1
    image_mean: [0.485, 0.456, 0.406]
    image_std: [0.229, 0.224, 0.225]
    num_layers: 101
    topk: 5

TRAIN:
    seg_num: 3
    epoch: 45
    short_size: 256
    target_size: 224
    num_reader_threads: 12
    buf_size: 1024
    batch_size: {train_batch}
    use_gpu: True
    num_gpus: {num_gpus}
    filelist: "./data/dataset/tsn/train.list"
    learning_rate: {learning_rate}
    learning_rate_decay: 0.1
    l2_weight_decay: 1e-4
    momentum: 0.9
    total_videos: 224684

VALID:
    seg_num: 3
    short_size: 256
    target_size: 224
    num_reader_threads: 12
    buf_size: 1024
    batch_size: {train_batch}
    filelist: "./data/dataset/tsn/val.list"

TEST:
    seg_num: 7
    short_size: 256
    target_size: 224
    num_reader_threads: 12
    buf_size: 1024
    batch_size: 16
    filelist: "./data/dataset/tsn/test.list"

INFER:
    seg_num: 300
    short_size: 256
    target_size: 224
    num_reader_threads: 12
    buf_size: 1024
    batch_size: 1
    filelist: "./data/dataset/tsn/infer.list"
"""

# file name -> its text, as VideoTag ships them
CONFIGS = {
    "attention_lstm.yaml": ATTENTION_LSTM.format(learning_rate=0.001, train_batch=1024, num_gpus=8),
    "attention_lstm-single.yaml": ATTENTION_LSTM.format(learning_rate=0.000125, train_batch=128, num_gpus=1),
    "tsn.yaml": TSN.format(learning_rate=0.01, train_batch=256, num_gpus=8),
    "tsn-single.yaml": TSN.format(learning_rate=0.00125, train_batch=32, num_gpus=1),
}


def write_configs(folder):
    """Write the four files into `folder`; returns {file name: path}."""
    paths = {}
    for name, text in CONFIGS.items():
        path = folder / name
        path.write_text(text)
        paths[name] = str(path)
    return paths
