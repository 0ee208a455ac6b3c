"""Data only: the firmware profiles (one TOML file per sensor model) and their test vectors.

The wheel installs this folder as the package ``collector.firmware_profiles`` (see setup.py),
so the gateway finds its profiles with importlib.resources wherever it is installed."""
