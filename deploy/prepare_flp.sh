#!/usr/bin/env bash
# Prepare a FasterLivePortrait checkout once, for both the HTTP (api.py) and the CLI (run.py)
# modes: download the checkpoints and convert them to TensorRT engines. Neither mode does this
# on its own: run.py never downloads, and api.py aborts at start-up if a model it loads (the
# animal one included) is missing.
#
#   FLP_CHECKOUT=/opt/FasterLivePortrait deploy/prepare_flp.sh            # in FLP's environment
#   docker run --rm --gpus all -v /opt/FasterLivePortrait:/root/FasterLivePortrait \
#       -e FLP_CHECKOUT=/root/FasterLivePortrait -v "$PWD/deploy:/deploy" \
#       shaoguo/faster_liveportrait:v3 bash -lc /deploy/prepare_flp.sh  # or inside FLP's image
#
# Not run in this project's CI (it needs an NVIDIA GPU, TensorRT and the weights): see the note
# in deploy/README.md. It is safe to run again: finished steps are skipped.
set -euo pipefail

checkout="${FLP_CHECKOUT:?set FLP_CHECKOUT to the FasterLivePortrait checkout}"
cd "$checkout"
# FLP's image puts Python and TensorRT on the path in ~/.bashrc only.
if [ -f "$HOME/.bashrc" ]; then set +u; source "$HOME/.bashrc"; set -u; fi

# 1. The checkpoints (ONNX), from FLP's Hugging Face repository.
if [ ! -d checkpoints/liveportrait_onnx ]; then
    pip install -q "huggingface_hub[cli]"
    huggingface-cli download warmshao/FasterLivePortrait --local-dir ./checkpoints
fi

# 2. The animal models: FLP's config names checkpoints/liveportrait_animal_onnx/*-v1.1.onnx, while
#    the v1.1 files are published under liveportrait_animal_onnx_v1.1/. Link them where the config
#    looks, or api.py aborts while loading the animal pipeline and its container restarts forever.
if [ -d checkpoints/liveportrait_animal_onnx_v1.1 ]; then
    mkdir -p checkpoints/liveportrait_animal_onnx
    for model in checkpoints/liveportrait_animal_onnx_v1.1/*.onnx; do
        target="checkpoints/liveportrait_animal_onnx/$(basename "$model")"
        [ -e "$target" ] || ln -s "../liveportrait_animal_onnx_v1.1/$(basename "$model")" "$target"
    done
fi

# 3. TensorRT engines for the human and the animal models (configs/trt_infer.yaml uses them).
if ! ls checkpoints/liveportrait_onnx/*.trt >/dev/null 2>&1; then
    sh scripts/all_onnx2trt.sh
fi
if ! ls checkpoints/liveportrait_animal_onnx/*.trt >/dev/null 2>&1; then
    sh scripts/all_onnx2trt_animal.sh
fi

# 4. Our adapters match FLP's output frames to the driving frames whole: the config must not crop
#    the driving video (the worker refuses one that does, in CLI mode).
if grep -Eq '^\s*flag_crop_driving_video:\s*(true|True)' configs/trt_infer.yaml; then
    echo "configs/trt_infer.yaml sets flag_crop_driving_video: true; set it to false" >&2
    exit 1
fi
echo "FasterLivePortrait is ready in $checkout"
