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
# Recommended, and only when configured: edgebench-models is skipped without
# EDGEBENCH_MODELS_URI, and bitbake refuses even a recommendation of a skipped recipe
# ("Nothing RPROVIDES"). edgebench-image warns when the image has no models.
EDGEBENCH_MODELS_URI ??= ""
RRECOMMENDS:${PN} = "${@'edgebench-models' if d.getVar('EDGEBENCH_MODELS_URI') else ''}"
