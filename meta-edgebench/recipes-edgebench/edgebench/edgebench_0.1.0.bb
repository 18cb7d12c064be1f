SUMMARY = "Neural-network inference benchmark daemon for embedded boards"
DESCRIPTION = "edgebench measures latency, throughput and the knee batch size \
               of ONNX and TensorFlow Lite models with ONNX Runtime (CPU, CUDA, \
               TensorRT) and the Coral Edge TPU, records thermal and power \
               telemetry while it runs, and publishes results over MQTT. It runs \
               as a hardened systemd service."
SECTION = "devel"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=7;endline=7;md5=86b31c7756a1a7962f28b62856ed4f05"

# Source. By default the edgebench tree this layer sits in (meta-edgebench/..),
# built in place with externalsrc, so the layer always builds the code it ships
# with. EDGEBENCH_SRCTREE points at another checkout; EDGEBENCH_GIT_URI (plus
# SRCREV) builds a pinned commit from a git server instead.
EDGEBENCH_SRCTREE ??= "${@os.path.normpath(os.path.join(d.getVar('EDGEBENCH_LAYERDIR'), '..'))}"
EDGEBENCH_GIT_URI ??= ""
EDGEBENCH_EXTERNALSRC = "${@'externalsrc' if not d.getVar('EDGEBENCH_GIT_URI') else ''}"
EXTERNALSRC = "${@d.getVar('EDGEBENCH_SRCTREE') if not d.getVar('EDGEBENCH_GIT_URI') else ''}"
SRC_URI = "${EDGEBENCH_GIT_URI}"

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
# appends switch on what their machines have.
PACKAGECONFIG ??= ""
PACKAGECONFIG[onnxruntime] = ",,,onnxruntime"
PACKAGECONFIG[cuda] = ",,,cuda-cudart"
PACKAGECONFIG[tensorrt] = ",,,tensorrt-core"
PACKAGECONFIG[tflite] = ",,,libtensorflow-lite-c"
PACKAGECONFIG[edgetpu] = ",,,libedgetpu-std"

# The release profile strips symbols; let the package split do it (debug package,
# no "already-stripped" QA error). Keep source paths out of the binary.
export CARGO_PROFILE_RELEASE_STRIP = "false"
RUSTFLAGS += "--remap-path-prefix=${S}=${TARGET_DBGSRC_DIR}"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system edgebench"
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

    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/edgebench.sysusers ${D}${nonarch_libdir}/sysusers.d/edgebench.conf
    install -m 0644 ${S}/systemd/edgebench.tmpfile ${D}${nonarch_libdir}/tmpfiles.d/edgebench.conf
}

# Man pages go to ${PN}-doc, bash completion to ${PN}-bash-completion (bash-completion class).
PACKAGES =+ "${PN}-zsh-completion ${PN}-fish-completion"
FILES:${PN}-zsh-completion += "${datadir}/zsh"
FILES:${PN}-fish-completion += "${datadir}/fish"
FILES:${PN} += "${systemd_system_unitdir}/edgebench.service.d \
                 ${nonarch_libdir}/sysusers.d/edgebench.conf \
                 ${nonarch_libdir}/tmpfiles.d/edgebench.conf"
RDEPENDS:${PN}-zsh-completion += "zsh"
RDEPENDS:${PN}-fish-completion += "fish"
CONFFILES:${PN} = "${sysconfdir}/edgebench/edgebench.toml"
