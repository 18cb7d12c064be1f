SUMMARY = "Neural-network inference benchmark daemon for embedded boards"
DESCRIPTION = "edgebench measures latency, throughput and the knee batch size \
               of ONNX and TensorFlow Lite models with ONNX Runtime (CPU, CUDA, \
               TensorRT) and the Coral Edge TPU, records thermal and power \
               telemetry while it runs, and publishes results over MQTT. It runs \
               as a hardened systemd service."
HOMEPAGE = "${EDGEBENCH_HOMEPAGE}"
SECTION = "devel"
# edgebench itself is MIT or Apache-2.0; the binary links the crates of Cargo.lock
# statically, whose licences follow (scripts/gen-licenses.sh writes this line and the
# third-party notice, THIRD-PARTY-LICENSES.md, installed with the binary).
LICENSE = "(MIT | Apache-2.0) & Apache-2.0 & BSD-3-Clause & ISC & MIT & Unicode-3.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=1c6fa8da4f631bb7e345b76cba482474 \
                    file://LICENSE-APACHE;md5=22a53954e4e0ec258dfce4391e905dac \
                    file://THIRD-PARTY-LICENSES.md;md5=7049e590ec4b63df39dc28f0d576ac05"

# Source: a pinned revision (SRCREV) of the edgebench git repository, by default the
# clone this layer sits in (meta-edgebench/..), so a fresh checkout builds offline;
# EDGEBENCH_GIT_URI names a server instead. The crate list (edgebench-crates.inc)
# matches Cargo.lock at SRCREV (scripts/check-yocto.sh checks it;
# packaging/pin-srcrev.sh moves the pin).
# Working on the tree: EDGEBENCH_SRCTREE = "/path/to/edgebench" in local.conf builds
# that checkout in place (externalsrc) instead.
EDGEBENCH_GIT_URI ??= "git://${@os.path.normpath(os.path.join(d.getVar('EDGEBENCH_LAYERDIR'), '..'))};protocol=file;nobranch=1"
SRC_URI = "${EDGEBENCH_GIT_URI}"
PV = "0.1.0+git"
SRCREV = "f57e88388da0b410e80e5247b9a31c88a4027c8c"

EDGEBENCH_SRCTREE ??= ""
EXTERNALSRC = "${EDGEBENCH_SRCTREE}"
EDGEBENCH_EXTERNALSRC = "${@'externalsrc' if d.getVar('EDGEBENCH_SRCTREE') else ''}"

inherit cargo cargo-update-recipe-crates systemd useradd bash-completion
inherit_defer ${EDGEBENCH_EXTERNALSRC}

require ${BPN}-crates.inc

# Board profile installed as /etc/edgebench/edgebench.toml: configs/<profile>.toml
# from the source tree. Empty: configs/edgebench.toml, the documented defaults.
# Set EDGEBENCH_PROFILE in local.conf to choose another; the machine defaults
# below apply otherwise.
EDGEBENCH_PROFILE ??= "${EDGEBENCH_PROFILE_DEFAULT}"
EDGEBENCH_PROFILE_DEFAULT ??= ""
EDGEBENCH_PROFILE_DEFAULT:orin-nano = "jetson-orin-nano"
EDGEBENCH_PROFILE_DEFAULT:jetson-agx-orin-devkit = "jetson-agx-orin"
EDGEBENCH_PROFILE_DEFAULT:jetson-agx-orin-devkit-industrial = "jetson-agx-orin"
EDGEBENCH_PROFILE_DEFAULT:raspberrypi5 = "rpi5"
EDGEBENCH_PROFILE_DEFAULT:x86-64 = "x86-desk"

# systemd drop-ins (systemd/dropins/<name>.conf) installed as
# edgebench.service.d/10-<name>.conf: those the profile's board needs, else
# EDGEBENCH_DROPINS_MACHINE (set by the board layers' dynamic-layers/ appends).
EDGEBENCH_DROPINS_MACHINE ??= ""

def edgebench_dropins(d):
    table = {
        'jetson-orin-nano': 'jetson',
        'jetson-agx-orin': 'jetson',
        'coral-devboard': 'coral-pcie',
        'rpi5': '',
        'rpi-coral-usb': 'coral-usb',
    }
    profile = d.getVar('EDGEBENCH_PROFILE') or ''
    return table.get(profile, d.getVar('EDGEBENCH_DROPINS_MACHINE') or '')

EDGEBENCH_DROPINS ??= "${@edgebench_dropins(d)}"

# Run-time libraries per accelerator backend (edgebench loads them with dlopen,
# so they are run-time dependencies only). The board layers' dynamic-layers/
# appends switch on what their machines have. CUDA and TensorRT are reached only
# through ONNX Runtime's providers: the onnxruntime package's own library
# dependencies pull in cuda-cudart and TensorRT (tensorrt-core's libnvinfer and
# the builder resource of the SoC), so edgebench names onnxruntime, whose package
# name does not change with the TensorRT release or Debian-style renaming.
PACKAGECONFIG ??= ""
PACKAGECONFIG[onnxruntime] = ",,,onnxruntime"
PACKAGECONFIG[cuda] = ",,,onnxruntime"
PACKAGECONFIG[tensorrt] = ",,,onnxruntime"
PACKAGECONFIG[tflite] = ",,,libtensorflow-lite-c"
PACKAGECONFIG[edgetpu] = ",,,libedgetpu-std"

# Man pages go to ${PN}-doc, bash completion to ${PN}-bash-completion (bash-completion class).
PACKAGES =+ "${PN}-zsh-completion ${PN}-fish-completion"

# Coral PCIe / M.2 (drop-in coral-pcie): the gasket/apex driver's nodes are root-only
# without a udev rule; ship one (group apex, 0660) and recommend the out-of-tree
# driver's module packages (no layer here builds them: see the README).
EDGEBENCH_CORAL_PCIE = "${@'1' if 'coral-pcie' in (d.getVar('EDGEBENCH_DROPINS') or '').split() else ''}"
RRECOMMENDS:${PN} += "${@'kernel-module-gasket kernel-module-apex' if d.getVar('EDGEBENCH_CORAL_PCIE') else ''}"

# The profile, drop-ins, udev rule and run-time dependencies depend on the machine.
PACKAGE_ARCH = "${MACHINE_ARCH}"

# The release profile strips symbols; let the package split do it (debug package,
# no "already-stripped" QA error). Keep source paths out of the binary.
export CARGO_PROFILE_RELEASE_STRIP = "false"
RUSTFLAGS += "--remap-path-prefix=${S}=${TARGET_DBGSRC_DIR}"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system edgebench${@'; --system -f apex' if d.getVar('EDGEBENCH_CORAL_PCIE') else ''}"
# Coral PCIe: group "apex" exists for the udev rule below; the user joins it in the
# meta-tensorflow-lite append, which brings the Edge TPU runtime.
USERADD_PARAM:${PN} = "--system --gid edgebench --home-dir ${localstatedir}/lib/edgebench \
                        --no-create-home --shell ${base_sbindir}/nologin \
                        --comment 'edgebench benchmark daemon' edgebench"

SYSTEMD_SERVICE:${PN} = "edgebench.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    if [ -n "${EDGEBENCH_PROFILE}" ]; then
        profile="${S}/configs/${EDGEBENCH_PROFILE}.toml"
    else
        profile="${S}/configs/edgebench.toml"
    fi
    if [ ! -f "$profile" ]; then
        bbfatal "EDGEBENCH_PROFILE = '${EDGEBENCH_PROFILE}': no such profile $profile; set it to the name of a file in configs/ without .toml"
    fi
    install -d ${D}${sysconfdir}/edgebench
    install -m 0644 "$profile" ${D}${sysconfdir}/edgebench/edgebench.toml

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/edgebench.service ${D}${systemd_system_unitdir}/
    for dropin in ${EDGEBENCH_DROPINS}; do
        if [ ! -f ${S}/systemd/dropins/$dropin.conf ]; then
            bbfatal "EDGEBENCH_DROPINS: no drop-in systemd/dropins/$dropin.conf"
        fi
        install -d ${D}${systemd_system_unitdir}/edgebench.service.d
        install -m 0644 ${S}/systemd/dropins/$dropin.conf \
            ${D}${systemd_system_unitdir}/edgebench.service.d/10-$dropin.conf
    done

    # Man pages and completions generated from the CLI (packaging/docs, scripts/gen-docs.sh).
    install -d ${D}${mandir}/man1
    install -m 0644 ${S}/packaging/docs/man/*.1 ${D}${mandir}/man1/
    install -D -m 0644 ${S}/packaging/docs/completions/edgebench.bash \
        ${D}${datadir}/bash-completion/completions/edgebench
    install -D -m 0644 ${S}/packaging/docs/completions/_edgebench \
        ${D}${datadir}/zsh/site-functions/_edgebench
    install -D -m 0644 ${S}/packaging/docs/completions/edgebench.fish \
        ${D}${datadir}/fish/vendor_completions.d/edgebench.fish

    if [ -n "${EDGEBENCH_CORAL_PCIE}" ]; then
        install -D -m 0644 ${S}/packaging/udev/60-edgebench-apex.rules \
            ${D}${nonarch_base_libdir}/udev/rules.d/60-edgebench-apex.rules
    fi

    # Licence texts and the third-party notice (the crates linked into the binary),
    # in the main package: documentation packages are often left out of images.
    install -d ${D}${datadir}/edgebench/licenses
    install -m 0644 ${S}/LICENSE-MIT ${S}/LICENSE-APACHE ${S}/THIRD-PARTY-LICENSES.md \
        ${D}${datadir}/edgebench/licenses/

    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/edgebench.sysusers ${D}${nonarch_libdir}/sysusers.d/edgebench.conf
    install -m 0644 ${S}/systemd/edgebench.tmpfile ${D}${nonarch_libdir}/tmpfiles.d/edgebench.conf
}

FILES:${PN}-zsh-completion += "${datadir}/zsh"
FILES:${PN}-fish-completion += "${datadir}/fish"
FILES:${PN} += "${systemd_system_unitdir}/edgebench.service.d \
                 ${nonarch_base_libdir}/udev/rules.d \
                 ${datadir}/edgebench/licenses \
                 ${nonarch_libdir}/sysusers.d/edgebench.conf \
                 ${nonarch_libdir}/tmpfiles.d/edgebench.conf"
# No RDEPENDS on the shells: completion files are inert without them, and no layer
# here provides fish.
CONFFILES:${PN} = "${sysconfdir}/edgebench/edgebench.toml"
