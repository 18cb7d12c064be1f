# mosquitto_sub / mosquitto_pub for watching edgebench's MQTT traffic on the board.
RDEPENDS:${PN} += "mosquitto-clients"
