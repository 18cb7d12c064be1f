SUMMARY = "edgebench daemon, models and configuration"
DESCRIPTION = "Everything an image needs to run edgebench as a service: the \
               daemon with its board profile and systemd drop-ins, and the \
               model set."
SECTION = "devel"
LICENSE = "MIT"

PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

RDEPENDS:${PN} = "edgebench \
                  edgebench-models"
