################################################################################
#
# onnxruntime-bin
#
################################################################################

# The wheel is given as a file on the build host (no download, no hash: the
# user picks the version).
ONNXRUNTIME_BIN_WHEEL = $(call qstrip,$(BR2_PACKAGE_ONNXRUNTIME_BIN_WHEEL))
ONNXRUNTIME_BIN_SITE = $(patsubst %/,%,$(dir $(ONNXRUNTIME_BIN_WHEEL)))
ONNXRUNTIME_BIN_SOURCE = $(notdir $(ONNXRUNTIME_BIN_WHEEL))
ONNXRUNTIME_BIN_SITE_METHOD = file
ONNXRUNTIME_BIN_VERSION = $(word 2,$(subst -, ,$(ONNXRUNTIME_BIN_SOURCE)))
ONNXRUNTIME_BIN_LICENSE = MIT
ONNXRUNTIME_BIN_LICENSE_FILES = LICENSE
BR_NO_CHECK_HASH_FOR += $(ONNXRUNTIME_BIN_SOURCE)

ifeq ($(BR2_PACKAGE_ONNXRUNTIME_BIN)$(BR_BUILDING),yy)
ifeq ($(ONNXRUNTIME_BIN_WHEEL),)
$(error BR2_PACKAGE_ONNXRUNTIME_BIN_WHEEL is empty: set it to an onnxruntime wheel for the target (see its help))
endif
endif

define ONNXRUNTIME_BIN_EXTRACT_CMDS
	$(UNZIP) -o -d $(@D) $(ONNXRUNTIME_BIN_DL_DIR)/$(ONNXRUNTIME_BIN_SOURCE) \
		'onnxruntime/capi/libonnxruntime*.so*' 'onnxruntime-*.dist-info/*'
	cp $(@D)/onnxruntime-*.dist-info/LICENSE* $(@D)/LICENSE 2>/dev/null || \
		cp $(@D)/onnxruntime-*.dist-info/licenses/LICENSE* $(@D)/LICENSE
endef

define ONNXRUNTIME_BIN_INSTALL_TARGET_CMDS
	for f in $(@D)/onnxruntime/capi/libonnxruntime*.so*; do \
		$(INSTALL) -D -m 0755 $$f $(TARGET_DIR)/usr/lib/$$(basename $$f) || exit 1; \
	done
	cd $(TARGET_DIR)/usr/lib && \
		core=$$(ls libonnxruntime.so.*.* | head -n 1) && \
		ln -sf $$core libonnxruntime.so.1 && ln -sf $$core libonnxruntime.so
endef

$(eval $(generic-package))
