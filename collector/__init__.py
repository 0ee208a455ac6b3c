"""The edge: firmware profiles, pure decoders, clock model, BLE shell, virtual sensors, spooling publisher."""
