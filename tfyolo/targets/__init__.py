"""On-device targets without the device: Arm Ethos-U NPUs through Vela, microcontrollers through TFLite Micro."""
