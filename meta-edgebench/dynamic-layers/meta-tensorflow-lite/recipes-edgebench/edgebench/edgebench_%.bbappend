# Coral Edge TPU (meta-tensorflow-lite): TensorFlow Lite's C library and
# libedgetpu, for the Coral profiles. libedgetpu's udev rule gives USB
# accelerators to "plugdev"; the gasket driver gives /dev/apex_* to "apex".
# The profile's drop-in (10-coral-usb.conf / 10-coral-pcie.conf) opens the
# devices; the user joins both groups here.
EDGEBENCH_CORAL = "${@'1' if 'coral' in (d.getVar('EDGEBENCH_PROFILE') or '') else ''}"

PACKAGECONFIG:append = " ${@'tflite edgetpu' if d.getVar('EDGEBENCH_CORAL') else ''}"

GROUPADD_PARAM:${PN}:append = " ${@'; --system -f plugdev; --system -f apex' if d.getVar('EDGEBENCH_CORAL') else ''}"
GROUPMEMS_PARAM:${PN} = "${@'--add edgebench --group plugdev; --add edgebench --group apex' if d.getVar('EDGEBENCH_CORAL') else ''}"
