# Raspberry Pi (meta-raspberrypi): raspberrypi5 machines default to the rpi5
# profile (see the recipe); every Pi gets the Pi drop-in (10-rpi.conf: the
# VideoCore mailbox for throttling flags and Pi 5 PMIC readings).
EDGEBENCH_DROPINS_MACHINE:rpi = "rpi"
