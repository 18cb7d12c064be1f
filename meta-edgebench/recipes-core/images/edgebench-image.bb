SUMMARY = "Minimal image running the edgebench benchmark daemon"
DESCRIPTION = "A core-image-minimal-sized image with edgebench, its models and \
               board configuration, and the MQTT command-line clients for \
               debugging (when meta-networking is in the build)."
SECTION = "devel"
LICENSE = "MIT"

IMAGE_INSTALL = "packagegroup-core-boot \
                 packagegroup-edgebench \
                 ${CORE_IMAGE_EXTRA_INSTALL}"

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_LINGUAS = ""

REQUIRED_DISTRO_FEATURES = "systemd"

inherit core-image features_check
