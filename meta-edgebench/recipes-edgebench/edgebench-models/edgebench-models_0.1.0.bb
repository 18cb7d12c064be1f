SUMMARY = "Benchmark models for edgebench"
DESCRIPTION = "The model set edgebench benchmarks (ONNX and TensorFlow Lite \
               files plus manifest.toml) in /usr/share/edgebench/models, and \
               the Coral manifest in /usr/share/edgebench/models/coral, from a \
               model archive made with models/pack.sh of the edgebench tree."
HOMEPAGE = "${EDGEBENCH_HOMEPAGE}"
SECTION = "devel"
# torchvision's architectures and weights (the ONNX exports): BSD-3-Clause;
# Coral's model zoo files (Edge TPU and CPU .tflite): Apache-2.0.
LICENSE = "BSD-3-Clause & Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/BSD-3-Clause;md5=550794465ba0ec5312d6919e203a55f9 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The archive: models/pack.sh prints its sha256. Models are large and built on a host
# with PyTorch (models/README.md), so no default is shipped: set both in local.conf,
# e.g. EDGEBENCH_MODELS_URI = "https://<your server>/edgebench-models-0.1.0.tar.gz"
# (or file:///path/to/edgebench-models.tar.gz). Without them this recipe is skipped;
# packagegroup-edgebench only recommends it, and edgebench-image warns that the
# image has no models.
EDGEBENCH_MODELS_URI ??= ""
EDGEBENCH_MODELS_SHA256 ??= ""
SRC_URI = "${EDGEBENCH_MODELS_URI}"
SRC_URI[sha256sum] = "${EDGEBENCH_MODELS_SHA256}"
S = "${UNPACKDIR}/edgebench-models"

inherit allarch

EDGEBENCH_MODELS_MISSING = "set EDGEBENCH_MODELS_URI and EDGEBENCH_MODELS_SHA256 to the archive made by models/pack.sh (see meta-edgebench/README)"
SKIP_RECIPE[edgebench-models] = "${@'' if d.getVar('EDGEBENCH_MODELS_URI') else d.getVar('EDGEBENCH_MODELS_MISSING')}"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    if [ ! -f ${S}/manifest.toml ] || [ ! -f ${S}/coral/manifest.toml ]; then
        bbfatal "${EDGEBENCH_MODELS_URI} is not a models/pack.sh archive: no edgebench-models/manifest.toml and coral/manifest.toml"
    fi
    install -d ${D}${datadir}/edgebench/models
    cp -R --no-dereference --preserve=mode,timestamps ${S}/. ${D}${datadir}/edgebench/models/
}

FILES:${PN} += "${datadir}/edgebench/models"
