#!/bin/sh
# Regenerates dashboard.schema.json from the dashboard types Grafana publishes on npm
# (@grafana/schema, Apache-2.0), converted to JSON Schema by ts-json-schema-generator.
# Needs node and npm. Run from anywhere: sh dashboards/schema/regenerate-dashboard-schema.sh
set -eu
GRAFANA_SCHEMA_VERSION=11.6.16   # the Grafana release the Compose stack pins
GENERATOR_VERSION=2.10.0
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund \
  "@grafana/schema@$GRAFANA_SCHEMA_VERSION" "ts-json-schema-generator@$GENERATOR_VERSION"
npx ts-json-schema-generator --no-type-check --type Dashboard \
  --path node_modules/@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen.d.ts \
  -o raw.json
# One change by hand, and only this one: Grafana's type gives an annotation's target the
# fields of the built-in Grafana data source alone (its own comment calls that a TODO: the
# target is the annotation data source's query). An InfluxQL annotation adds query, rawQuery,
# refId, resultFormat and column names there, so that object admits more properties.
python3 - raw.json "$here/dashboard.schema.json" <<'PY'
import json, sys
schema = json.load(open(sys.argv[1]))
target = schema["definitions"]["AnnotationTarget"]
target["additionalProperties"] = True
target["description"] = (target.get("description", "") + " [poise: additionalProperties opened, "
                         "see regenerate-dashboard-schema.sh]").strip()
with open(sys.argv[2], "w") as fh:
    json.dump(schema, fh, indent=2, sort_keys=True)
    fh.write("\n")
PY
echo "wrote $here/dashboard.schema.json"
