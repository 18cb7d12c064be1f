# meta-tegra-community (needs meta-tegra): ONNX Runtime built with the CUDA and
# TensorRT execution providers (its onnxruntime, COMPATIBLE_MACHINE = "(cuda)",
# layer priority 20, so bitbake picks it over meta-onnxruntime's on Jetson).
PACKAGECONFIG:append:cuda = " onnxruntime"
