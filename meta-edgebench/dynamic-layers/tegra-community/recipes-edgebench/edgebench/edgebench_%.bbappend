# NVIDIA Jetson (meta-tegra + meta-tegra-community): ONNX Runtime built with the
# CUDA and TensorRT execution providers (meta-tegra-community's onnxruntime,
# COMPATIBLE_MACHINE = "(cuda)"), TensorRT from meta-tegra. The drop-in
# 10-jetson.conf opens the GPU / DLA nodes and the "video" group.
PACKAGECONFIG:append:cuda = " onnxruntime cuda tensorrt"
EDGEBENCH_DROPINS_MACHINE:tegra = "jetson"
