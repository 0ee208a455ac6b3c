#!/bin/sh
# Makes Mosquitto's password file from the Compose secrets, then starts the broker.
# Users: the site's gateway (named after the site id, as the ACL's patterns expect) and one
# user per service role. Passwords are hashed by mosquitto_passwd; none is logged.
set -eu
umask 077
mkdir -p /mosquitto/run
passwd=/mosquitto/run/passwd
: > "$passwd"
add() {  # user secret-file
  [ -s "$2" ] || { echo "mosquitto: secret $2 is empty: set it in .env" >&2; exit 1; }
  mosquitto_passwd -b "$passwd" "$1" "$(cat "$2")"
}
add "$POISE_SITE" /run/secrets/gateway_password
add poise.ingest /run/secrets/ingest_password
add poise.worker /run/secrets/worker_password
add poise.console /run/secrets/console_password
add poise.admin /run/secrets/admin_password
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
