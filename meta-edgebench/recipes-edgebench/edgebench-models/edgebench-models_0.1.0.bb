SUMMARY = "Benchmark models for edgebench"
DESCRIPTION = "The model set edgebench benchmarks (ONNX and TensorFlow Lite \
               files plus manifest.toml), installed in /usr/share/edgebench/models. \
               The models are exported on the build host with the scripts in the \
               edgebench source tree (models/); this recipe installs a directory \
               of them."
SECTION = "devel"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# Directory holding manifest.toml and the model files it lists, made on the
# build host (see the layer README). Default: models/build of the source tree.
EDGEBENCH_SRCTREE ??= "${@os.path.normpath(os.path.join(d.getVar('EDGEBENCH_LAYERDIR'), '..'))}"
EDGEBENCH_MODELS_DIR ??= "${EDGEBENCH_SRCTREE}/models/build"

inherit allarch

# Without models the recipe is skipped, and bitbake says why when an image needs it.
EDGEBENCH_MODELS_MISSING = "EDGEBENCH_MODELS_DIR (${EDGEBENCH_MODELS_DIR}) has no manifest.toml: build the models on the host first, or point EDGEBENCH_MODELS_DIR at a model directory"
SKIP_RECIPE[edgebench-models] = "${@'' if os.path.isfile(d.expand('${EDGEBENCH_MODELS_DIR}/manifest.toml')) else d.getVar('EDGEBENCH_MODELS_MISSING')}"

# Rebuild when any model file or the manifest changes.
do_install[file-checksums] += "${EDGEBENCH_MODELS_DIR}/*:True"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${datadir}/edgebench/models
    cp -R --no-dereference --preserve=mode,timestamps "${EDGEBENCH_MODELS_DIR}"/. \
        ${D}${datadir}/edgebench/models/
    find ${D}${datadir}/edgebench/models -name '.*' -prune -exec rm -rf {} +
}

FILES:${PN} += "${datadir}/edgebench/models"
