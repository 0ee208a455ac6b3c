# The README's commands. Each installs what it needs: a .venv with poise installed editable,
# and (as root, on Debian) the mosquitto and influxdb packages when missing.
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTHON  ?= python3
SERVICE_BINS := /usr/sbin/mosquitto /usr/bin/influxd /usr/bin/mosquitto_sub

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

services:
	@missing=""; for b in $(SERVICE_BINS); do [ -x $$b ] || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages mosquitto and influxdb (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients influxdb >/dev/null; \
	  else echo "missing:$$missing -- run as root: apt-get install -y mosquitto mosquitto-clients influxdb" >&2; exit 1; fi; \
	fi

# reports: WeasyPrint renders the PDF with pango/harfbuzz; DejaVu is the report's font;
# poppler-utils (pdftoppm, pdftotext) lets the tests look at the PDF's pages
REPORT_LIBS := /usr/bin/pdftoppm /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
report-deps:
	@missing=""; for f in $(REPORT_LIBS); do [ -e $$f ] || missing="$$missing $$f"; done; \
	ldconfig -p 2>/dev/null | grep -q libpango-1.0 || missing="$$missing libpango"; \
	ldconfig -p 2>/dev/null | grep -q libharfbuzz || missing="$$missing libharfbuzz"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages for reports (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core poppler-utils >/dev/null; \
	  else echo "missing:$$missing -- run as root: apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core poppler-utils" >&2; exit 1; fi; \
	fi
# console browser tests: Debian's chromium driven by Playwright (never a browser download)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
browser:
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the console's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "missing /usr/bin/chromium -- run as root: apt-get install -y chromium" >&2; exit 1; fi; }

demo: $(STAMP) services
	$(BIN)/poise demo

lint: $(STAMP)
	$(BIN)/ruff check poise collector analysis dashboards tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: $(STAMP) services report-deps browser lint
	$(BIN)/pytest

bench: $(STAMP) services
	$(BIN)/python -m bench.run

soak: $(STAMP) services
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

dashboards: $(STAMP)
	$(BIN)/python -m dashboards.build
