include $(sort $(wildcard $(BR2_EXTERNAL_EDGEBENCH_PATH)/package/*/*.mk))
