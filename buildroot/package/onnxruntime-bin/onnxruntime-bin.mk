################################################################################
#
# onnxruntime-bin
#
################################################################################

# ONNX Runtime's library from the onnxruntime wheel of PyPI for the target (pinned
# version; onnxruntime-bin.hash has the wheels' sha256). The wheel is fetched on the
# build host with pip (see Config.in) into BR2_PACKAGE_ONNXRUNTIME_BIN_WHEEL_DIR, or
# placed in DL_DIR/onnxruntime-bin/ by hand.
ONNXRUNTIME_BIN_VERSION = 1.32.0
ONNXRUNTIME_BIN_WHEEL_ARCH = $(if $(BR2_aarch64),aarch64,x86_64)
ONNXRUNTIME_BIN_SOURCE = onnxruntime-$(ONNXRUNTIME_BIN_VERSION)-cp311-cp311-manylinux_2_28_$(ONNXRUNTIME_BIN_WHEEL_ARCH).whl
ONNXRUNTIME_BIN_WHEEL_DIR = $(call qstrip,$(BR2_PACKAGE_ONNXRUNTIME_BIN_WHEEL_DIR))
ONNXRUNTIME_BIN_SITE = $(if $(ONNXRUNTIME_BIN_WHEEL_DIR),$(ONNXRUNTIME_BIN_WHEEL_DIR),$(DL_DIR)/onnxruntime-bin)
ONNXRUNTIME_BIN_SITE_METHOD = file
ONNXRUNTIME_BIN_LICENSE = MIT
ONNXRUNTIME_BIN_LICENSE_FILES = onnxruntime/LICENSE onnxruntime/ThirdPartyNotices.txt

define ONNXRUNTIME_BIN_EXTRACT_CMDS
	$(UNZIP) -o -d $(@D) $(ONNXRUNTIME_BIN_DL_DIR)/$(ONNXRUNTIME_BIN_SOURCE) \
		'onnxruntime/capi/libonnxruntime*.so*' \
		onnxruntime/LICENSE onnxruntime/ThirdPartyNotices.txt
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
