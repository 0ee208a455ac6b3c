# The README's commands. Each installs what it needs: a .venv with poise installed editable,
# and (as root, on Debian) the Debian packages of DEB_PACKAGES when missing.
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTHON  ?= python3

.PHONY: demo test unit lint bench soak services report-deps browser clean help dashboards

help:
	@echo "make demo   - run the whole pipeline locally with simulated patients"
	@echo "make test   - lint, type-check and run every test against real services"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - benchmarks; results go to docs/benchmarks.md by hand"
	@echo "make soak   - 10 minutes at 100 sensors x 100 Hz through every service (not in CI)"
	@echo "make dashboards - regenerate the Grafana dashboards and alert rules (dashboards/)"

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (Debian) and retry" >&2; exit 1; fi; }
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Debian packages the demo and the tests run: the broker (Mosquitto, and nats-server for the
# scale-out tests), InfluxDB 1.x, the libraries WeasyPrint renders report PDFs with (pango,
# harfbuzz; DejaVu is the report's font; poppler-utils lets the tests look at the PDF's
# pages), and Debian's chromium for the console's browser tests (Playwright drives it; it
# never downloads a browser), and PostgreSQL for the console's records on a real server
# (the tests start a throwaway cluster; the system's own service is not used). One check,
# then one apt-get for whatever is missing.
DEB_PACKAGES := mosquitto mosquitto-clients influxdb nats-server chromium postgresql \
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core poppler-utils
NEEDED_FILES := /usr/sbin/mosquitto /usr/bin/mosquitto_sub /usr/bin/influxd /usr/sbin/nats-server \
  /usr/bin/chromium /usr/bin/pdftoppm /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
  /usr/bin/pg_ctlcluster
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
services:
	@missing=""; for f in $(NEEDED_FILES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	ldconfig -p 2>/dev/null | grep -q libpango-1.0 || missing="$$missing libpango"; \
	ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset || missing="$$missing libharfbuzz-subset"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing -- run as root: apt-get install -y $(DEB_PACKAGES)" >&2; exit 1; fi; \
	fi

# kept for habit: both are part of services now
report-deps browser: services

demo: $(STAMP) services
	$(BIN)/poise demo

lint: $(STAMP)
	$(BIN)/ruff check poise collector analysis dashboards tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: $(STAMP) services lint
	$(BIN)/pytest

bench: $(STAMP) services
	$(BIN)/python -m bench.run

soak: $(STAMP) services
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

dashboards: $(STAMP)
	$(BIN)/python -m dashboards.build
