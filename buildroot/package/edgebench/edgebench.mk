################################################################################
#
# edgebench
#
################################################################################

# Built from the edgebench source tree this external tree sits in. Another
# checkout: EDGEBENCH_OVERRIDE_SRCDIR in local.mk.
EDGEBENCH_VERSION = 0.1.0
EDGEBENCH_SITE = $(BR2_EXTERNAL_EDGEBENCH_PATH)/..
EDGEBENCH_SITE_METHOD = local
EDGEBENCH_LICENSE = MIT or Apache-2.0
EDGEBENCH_LICENSE_FILES = Cargo.toml
EDGEBENCH_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude .deps --exclude models/build

# A local source is not a download, so cargo-package's download-time
# vendoring does not run: vendor the crates of Cargo.lock before the build, the
# same way (cargo vendor --locked into VENDOR/ plus .cargo/config.toml), with
# host-rustc's cargo (a configure-step dependency).
define EDGEBENCH_CARGO_VENDOR
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	cd $(@D) && $(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --locked VENDOR > $(@D)/.cargo/config.toml
endef
EDGEBENCH_PRE_CONFIGURE_HOOKS += EDGEBENCH_CARGO_VENDOR

EDGEBENCH_PROFILE = $(call qstrip,$(BR2_PACKAGE_EDGEBENCH_PROFILE))
EDGEBENCH_DROPINS = $(call qstrip,$(BR2_PACKAGE_EDGEBENCH_DROPINS))
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
	$(foreach d,$(EDGEBENCH_DROPINS), \
		$(INSTALL) -D -m 0644 $(@D)/systemd/dropins/$(d).conf \
			$(TARGET_DIR)/usr/lib/systemd/system/edgebench.service.d/10-$(d).conf$(sep))
	$(INSTALL) -D -m 0644 $(@D)/systemd/edgebench.tmpfile \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/edgebench.conf
endef

# The system user (the unit's User=); "video" owns GPU / VideoCore nodes.
define EDGEBENCH_USERS
	edgebench -1 edgebench -1 * /var/lib/edgebench - video edgebench benchmark daemon
endef

$(eval $(cargo-package))
