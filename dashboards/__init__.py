"""Grafana dashboards as code: Python generators (grafana-foundation-sdk, Grafana 11.6
flavour), a typed InfluxQL query class, provisioning files and the vendored schemas.

``python -m dashboards.build`` writes ``dashboards/generated/*.json``; the tests fail when
regenerating would change a committed file. docs/dashboards.md describes each dashboard.
"""
