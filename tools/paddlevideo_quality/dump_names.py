"""Run by hand (never by CI): the parameter names and shapes of PaddleVideo's video quality model
(applications/VideoQualityAssessment: Recognizer2D with ResNetTweaksTSM-50, as pptsm_regression.yaml
builds it, and with its plain ResNet-50), built by PaddleVideo's own classes, written to
tests/fixtures/paddlevideo_quality_names.json for tests/test_quality.py.

    git --git-dir=<PaddleVideo.git> archive HEAD applications/VideoQualityAssessment | tar x -C /tmp/pv
    cd /tmp && python $REPO/tools/paddlevideo_quality/dump_names.py /tmp/pv/applications/VideoQualityAssessment

(from another folder: PaddleVideo's logger leaves a .log.txt in the working directory)
"""
import json
import os
import subprocess
import sys

import paddle  # noqa: F401  (PaddleVideo's package needs it loaded)

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "paddlevideo_quality_names.json")


def names(build_model, AttrDict, backbone):
    cfg = {"framework": "Recognizer2D", "backbone": {"name": backbone, "depth": 50},
           "head": {"name": "TSMRecHead", "num_classes": 1, "in_channels": 2048, "drop_ratio": 0.5, "std": 0.01,
                    "ls_eps": 0.1}}
    cfg = AttrDict({k: AttrDict(v) if isinstance(v, dict) else v for k, v in cfg.items()})  # as their yaml loader
    model = build_model(cfg)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def one_backbone(app_dir, backbone):
    """Printed as JSON; one process per model: PaddleVideo names its parameters explicitly
    (res2a_branch2a_weights), and paddle refuses a name twice in one process."""
    sys.path.insert(0, app_dir)
    from paddlevideo.modeling.builder import build_model  # PaddleVideo's own classes
    from paddlevideo.utils.config import AttrDict
    print(json.dumps(names(build_model, AttrDict, backbone)))


def main(app_dir):
    def run(backbone):
        done = subprocess.run([sys.executable, __file__, app_dir, backbone], check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    out = {"source": "PaddleVideo applications/VideoQualityAssessment, Recognizer2D + TSMRecHead(num_classes=1)",
           "pptsm": run("ResNetTweaksTSM"), "resnet": run("ResNet")}
    with open(FIXTURE, "w") as f:
        json.dump(out, f, indent=0)
    print(f"{len(out['pptsm'])} and {len(out['resnet'])} names -> {FIXTURE}")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        one_backbone(*sys.argv[1:3])
    else:
        main(sys.argv[1])
