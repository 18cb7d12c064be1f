SUMMARY = "Minimal image running the edgebench benchmark daemon"
DESCRIPTION = "A core-image-minimal-sized image with edgebench, its models and \
               board configuration, and the MQTT command-line clients for \
               debugging (when meta-networking is in the build)."
HOMEPAGE = "${EDGEBENCH_HOMEPAGE}"
SECTION = "devel"
LICENSE = "MIT"

IMAGE_INSTALL = "packagegroup-core-boot \
                 packagegroup-edgebench \
                 ${CORE_IMAGE_EXTRA_INSTALL}"

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_LINGUAS = ""

REQUIRED_DISTRO_FEATURES = "systemd"

inherit core-image features_check

# The models are only recommended (edgebench-models needs EDGEBENCH_MODELS_URI): say
# so when the image has none, rather than leaving the daemon to find out on the board.
ROOTFS_POSTPROCESS_COMMAND += "edgebench_models_check"
edgebench_models_check() {
    if [ ! -f ${IMAGE_ROOTFS}${datadir}/edgebench/models/manifest.toml ]; then
        bbwarn "edgebench-image has no models in ${datadir}/edgebench/models: set EDGEBENCH_MODELS_URI and EDGEBENCH_MODELS_SHA256 (meta-edgebench/README), or copy models to the board"
    fi
}
