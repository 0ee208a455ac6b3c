#!/bin/sh
# First start of InfluxDB in the poise Compose stack (run once by the image's entrypoint,
# sourced with $INFLUX_CMD logged in as the admin): retention policies and one user per role
# with the least privilege it needs. Passwords come from the Compose secrets.
set -eu
q() { $INFLUX_CMD "$1"; }
pw() { sed 's/\\/\\\\/g; s/'"'"'/\\'"'"'/g' "/run/secrets/$1"; }  # as an InfluxQL string
q "CREATE RETENTION POLICY \"raw\" ON \"poise\" DURATION ${POISE_RAW_RETENTION:-30d} REPLICATION 1 DEFAULT"
q "CREATE RETENTION POLICY \"derived\" ON \"poise\" DURATION INF REPLICATION 1"
q "CREATE USER \"poise.ingest\" WITH PASSWORD '$(pw ingest_password)'"
q "GRANT WRITE ON \"poise\" TO \"poise.ingest\""
q "CREATE USER \"poise.worker\" WITH PASSWORD '$(pw worker_password)'"
q "GRANT ALL ON \"poise\" TO \"poise.worker\""
q "CREATE USER \"poise.console\" WITH PASSWORD '$(pw console_password)'"
q "GRANT READ ON \"poise\" TO \"poise.console\""
q "CREATE USER \"poise.reader\" WITH PASSWORD '$(pw reader_password)'"
q "GRANT READ ON \"poise\" TO \"poise.reader\""
