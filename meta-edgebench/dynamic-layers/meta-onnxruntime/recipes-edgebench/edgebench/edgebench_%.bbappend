# Raspberry Pi and generic ARM / x86 machines: ONNX Runtime's CPU build from
# meta-onnxruntime (MLAS with NEON on ARM). Jetson machines take the CUDA /
# TensorRT build from meta-tegra-community instead (see README).
PACKAGECONFIG:append = " ${@'onnxruntime' if 'cuda' not in d.getVar('MACHINEOVERRIDES').split(':') else ''}"
