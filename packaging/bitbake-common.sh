# Shared set-up for the scripts that run bitbake on meta-edgebench
# (packaging/bitbake-parse.sh, packaging/yocto-check-layer.sh). Sourced, not run.
#
# bb_setup          checks OE_CORE / BITBAKE (sets both to absolute paths) and
#                   installs what bitbake needs on the host (as root, when missing)
# bb_copy_tree DIR  copies the source tree (with meta-edgebench) to DIR as a git checkout
# bb_run WORK FN    runs the exported shell function FN for the build under WORK:
#                   as BB_USER (created if missing, default "bbparse") when root,
#                   since bitbake refuses to run as root; variables to pass on are
#                   named in BB_PASS

bb_setup() {
    : "${OE_CORE:?set OE_CORE to an openembedded-core or poky checkout}"
    OE_CORE=$(cd "$OE_CORE" && pwd)
    BITBAKE=${BITBAKE:-$OE_CORE/bitbake}
    BITBAKE=$(cd "$BITBAKE" && pwd)
    [ -x "$BITBAKE/bin/bitbake" ] || { echo "no bitbake in $BITBAKE"; return 2; }
    [ -d "$OE_CORE/meta/conf" ] || { echo "no meta/conf in $OE_CORE"; return 2; }
    BB_USER=${BB_USER:-bbparse}

    # Host tools bitbake's sanity check asks for, and the en_US.UTF-8 locale it runs
    # under: installed (Debian / Ubuntu, as root) when missing, instead of failing on them.
    local host_packages=(gawk wget diffstat unzip texinfo chrpath socat cpio xz-utils zstd lz4
        file locales python3 python3-jinja2 python3-subunit python3-pexpect python3-git git
        build-essential)
    local missing=() p
    for p in "${host_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || { echo "bitbake needs: ${missing[*]} (install them as root)"; return 2; }
        echo "installing for bitbake: ${missing[*]}"
        # One apt at a time on a shared machine (the lock file is harmless elsewhere).
        DEBIAN_FRONTEND=noninteractive flock /tmp/apt.lock apt-get -o DPkg::Lock::Timeout=600 \
            install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ! locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then
        [ "$(id -u)" = 0 ] || { echo "bitbake needs the en_US.UTF-8 locale (locale-gen as root)"; return 2; }
        sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
        grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >>/etc/locale.gen
        locale-gen >/dev/null
    fi
}

bb_copy_tree() {
    local dest=$1
    # The layer and the source tree it builds from (without build outputs).
    mkdir -p "$dest"
    tar -C "$SRC" --exclude=./target --exclude=./.git --exclude=./.deps -cf - . | tar -C "$dest" -xf -
    # A git checkout, as users have: externalsrc then hashes the tree with git (without
    # git it walks every file, and warns about the test fixtures' dangling symlinks).
    git -C "$dest" init -q
    git -C "$dest" add -A
    git -C "$dest" -c user.name=bbparse -c user.email=bbparse@localhost commit -q -m snapshot
}

bb_run() {
    local work=$1 fn=$2 env="" v
    for v in work BITBAKE OE_CORE ${BB_PASS:-}; do
        env+="$v=$(printf '%q' "${!v-}") "
    done
    if [ "$(id -u)" = 0 ]; then
        id "$BB_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$BB_USER"
        chown -R "$BB_USER" "$work"
        chmod 755 "$work"
        export -f "$fn"
        su "$BB_USER" -s /bin/bash -c "$env bash -c $fn"
    else
        (export work BITBAKE OE_CORE ${BB_PASS:-}; "$fn")
    fi
}
