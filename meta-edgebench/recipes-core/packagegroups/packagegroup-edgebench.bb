SUMMARY = "edgebench daemon, models and configuration"
DESCRIPTION = "Everything an image needs to run edgebench as a service: the \
               daemon with its board profile and systemd drop-ins, and the \
               model set when one is configured (EDGEBENCH_MODELS_URI)."
HOMEPAGE = "${EDGEBENCH_HOMEPAGE}"
SECTION = "devel"
LICENSE = "MIT"

PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

RDEPENDS:${PN} = "edgebench"
# Recommended, not required: the model archive is configured per build (see the
# edgebench-models recipe); edgebench-image warns when the image ends up without it.
RRECOMMENDS:${PN} = "edgebench-models"
