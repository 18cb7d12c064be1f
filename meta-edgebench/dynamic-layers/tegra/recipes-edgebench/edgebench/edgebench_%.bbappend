# NVIDIA Jetson (meta-tegra, collection "tegra"): the drop-in 10-jetson.conf opens
# the GPU / DLA nodes and the "video" group. CUDA and TensorRT run through ONNX
# Runtime's providers: the CUDA / TensorRT build of onnxruntime comes from
# meta-tegra-community (dynamic-layers/tegra-community); without that layer an image
# needs another onnxruntime with those providers.
EDGEBENCH_DROPINS_MACHINE:tegra = "jetson"
PACKAGECONFIG:append:cuda = " cuda tensorrt"
