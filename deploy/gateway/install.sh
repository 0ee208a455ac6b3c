#!/bin/sh
# Installs a poise gateway on a Raspberry Pi (Raspberry Pi OS / Debian 12, 64-bit) or any
# Debian machine with Bluetooth LE. Run as root on the gateway, from a copy of the repository:
#   sudo sh deploy/gateway/install.sh
# Then edit /etc/poise/gateway.toml (site, gateway id, the room's sensors), put the broker's
# CA in /etc/poise/ca.crt and the site's gateway password in /etc/poise/gateway-mqtt-password,
# and start it:  systemctl enable --now poise-gateway
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip bluez

# a system user that may use BlueZ (group bluetooth) and nothing else
id poise-gateway >/dev/null 2>&1 || \
  useradd --system --no-create-home --home-dir /var/lib/poise \
          --shell /usr/sbin/nologin --groups bluetooth poise-gateway

# poise from a wheel built here, into its own virtual environment (upgrades: run again)
python3 -m venv /opt/poise/venv
/opt/poise/venv/bin/pip install -q --disable-pip-version-check --upgrade pip build
rm -rf /tmp/poise-wheel && /opt/poise/venv/bin/python -m build --wheel --outdir /tmp/poise-wheel "$repo"
/opt/poise/venv/bin/pip install -q --disable-pip-version-check --force-reinstall \
  "$(ls /tmp/poise-wheel/poise-*.whl)[collector]"
install -d /opt/poise/share && install -m 0644 "$repo/docs/deployment.md" /opt/poise/share/

# configuration: never overwritten once there
install -d -m 0755 /etc/poise
[ -e /etc/poise/gateway.toml ] || \
  install -m 0644 "$repo/docs/deploy/gateway.example.toml" /etc/poise/gateway.toml
[ -e /etc/poise/gateway.env ] || install -m 0644 "$here/gateway.env.example" /etc/poise/gateway.env
[ -e /etc/poise/gateway-mqtt-password ] || install -m 0600 /dev/null /etc/poise/gateway-mqtt-password

install -m 0644 "$here/poise-gateway.service" /etc/systemd/system/poise-gateway.service
systemctl daemon-reload
echo "installed. Next: edit /etc/poise/gateway.toml (site, gateway id, broker host and port 8883, sensors),"
echo "/etc/poise/gateway.env, /etc/poise/ca.crt, /etc/poise/gateway-mqtt-password; then"
echo "  /opt/poise/venv/bin/poise scan        # find the sensors' addresses"
echo "  systemctl enable --now poise-gateway"
