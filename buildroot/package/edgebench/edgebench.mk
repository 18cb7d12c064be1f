################################################################################
#
# edgebench
#
################################################################################

# A pinned revision of the edgebench git repository, by default the clone this
# external tree sits in (buildroot/..), fetched with git: the cargo infrastructure
# then vendors the crates of Cargo.lock into the download (make source), so the
# build itself is offline. The generated tarball's sha256 is in edgebench.hash;
# packaging/pin-srcrev.sh moves the pin (with Yocto's SRCREV). Working on the tree:
# EDGEBENCH_OVERRIDE_SRCDIR in local.mk (vendored before configure, below).
EDGEBENCH_VERSION = f57e88388da0b410e80e5247b9a31c88a4027c8c
EDGEBENCH_SITE = $(realpath $(BR2_EXTERNAL_EDGEBENCH_PATH)/..)
EDGEBENCH_SITE_METHOD = git
EDGEBENCH_LICENSE = MIT or Apache-2.0 (edgebench), Apache-2.0, BSD-3-Clause, ISC, MIT, Unicode-3.0 (linked crates)
EDGEBENCH_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.md
EDGEBENCH_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude .deps --exclude models/build

# Buildroot strips (or keeps symbols for BR2_ENABLE_DEBUG) itself: the crate's
# release profile would strip unconditionally.
EDGEBENCH_CARGO_ENV = CARGO_PROFILE_RELEASE_STRIP=false

# An override source directory is not a download, so the download-time vendoring
# does not run for it: vendor the crates of Cargo.lock before configure, the same
# way (cargo vendor --locked into VENDOR/ plus .cargo/config.toml).
ifneq ($(EDGEBENCH_OVERRIDE_SRCDIR),)
define EDGEBENCH_CARGO_VENDOR
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && $(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --locked VENDOR > $(@D)/.cargo/config.toml
endef
EDGEBENCH_PRE_CONFIGURE_HOOKS += EDGEBENCH_CARGO_VENDOR
endif

EDGEBENCH_PROFILE = $(call qstrip,$(BR2_PACKAGE_EDGEBENCH_PROFILE))
EDGEBENCH_MODELS_DIR = $(call qstrip,$(BR2_PACKAGE_EDGEBENCH_MODELS_DIR))
EDGEBENCH_CONFIG_FILE = configs/$(if $(EDGEBENCH_PROFILE),$(EDGEBENCH_PROFILE),edgebench).toml

define EDGEBENCH_INSTALL_CONFIG_AND_MODELS
	test -f $(@D)/$(EDGEBENCH_CONFIG_FILE) || \
		{ echo "BR2_PACKAGE_EDGEBENCH_PROFILE: no profile $(EDGEBENCH_CONFIG_FILE) in the edgebench tree"; exit 1; }
	$(INSTALL) -D -m 0644 $(@D)/$(EDGEBENCH_CONFIG_FILE) \
		$(TARGET_DIR)/etc/edgebench/edgebench.toml
	$(if $(EDGEBENCH_MODELS_DIR), \
		test -f $(EDGEBENCH_MODELS_DIR)/manifest.toml || \
			{ echo "BR2_PACKAGE_EDGEBENCH_MODELS_DIR: no manifest.toml in $(EDGEBENCH_MODELS_DIR)"; exit 1; }; \
		mkdir -p $(TARGET_DIR)/usr/share/edgebench/models; \
		cp -R --no-preserve=ownership $(EDGEBENCH_MODELS_DIR)/. $(TARGET_DIR)/usr/share/edgebench/models/)
endef
EDGEBENCH_POST_INSTALL_TARGET_HOOKS += EDGEBENCH_INSTALL_CONFIG_AND_MODELS

# Man pages and shell completions generated from the CLI (packaging/docs). Buildroot's
# target-finalize keeps the completions only with bash / zsh selected, and never man pages.
define EDGEBENCH_INSTALL_DOCS
	$(INSTALL) -d $(TARGET_DIR)/usr/share/edgebench/licenses
	$(INSTALL) -m 0644 $(@D)/LICENSE-MIT $(@D)/LICENSE-APACHE \
		$(@D)/THIRD-PARTY-LICENSES.md $(TARGET_DIR)/usr/share/edgebench/licenses/
	$(foreach f,$(notdir $(wildcard $(@D)/packaging/docs/man/*.1)), \
		$(INSTALL) -D -m 0644 $(@D)/packaging/docs/man/$(f) \
			$(TARGET_DIR)/usr/share/man/man1/$(f)$(sep))
	$(INSTALL) -D -m 0644 $(@D)/packaging/docs/completions/edgebench.bash \
		$(TARGET_DIR)/usr/share/bash-completion/completions/edgebench
	$(INSTALL) -D -m 0644 $(@D)/packaging/docs/completions/_edgebench \
		$(TARGET_DIR)/usr/share/zsh/site-functions/_edgebench
	$(INSTALL) -D -m 0644 $(@D)/packaging/docs/completions/edgebench.fish \
		$(TARGET_DIR)/usr/share/fish/vendor_completions.d/edgebench.fish
endef
EDGEBENCH_POST_INSTALL_TARGET_HOOKS += EDGEBENCH_INSTALL_DOCS

define EDGEBENCH_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/edgebench.service \
		$(TARGET_DIR)/usr/lib/systemd/system/edgebench.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/edgebench.tmpfile \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/edgebench.conf
endef

# The system user (the unit's User=). No accelerator groups: this tree provides
# ONNX Runtime's CPU build only (onnxruntime-bin), so no board drop-in is installed.
define EDGEBENCH_USERS
	edgebench -1 edgebench -1 * /var/lib/edgebench - - edgebench benchmark daemon
endef

$(eval $(cargo-package))
