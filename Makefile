# The two commands: `make run` (demo portal on http://127.0.0.1:8000) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test venv messages chromium libvirt novnc check lint

run: libvirt novnc venv messages
	$(PY) scripts/devenv.py --demo

test: libvirt novnc venv messages chromium
	$(PY) scripts/devenv.py -- $(PY) -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

# Development installs requirements-dev.txt (runtime + tests); production installs only requirements.txt.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

messages: venv
	$(PY) scripts/compilemessages.py

# Browser tests drive Debian's Chromium; install it when missing (never a Playwright browser download).
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core; }

# The libvirt provisioning module: its tests drive a real hypervisor and `make run` puts demo VMs on it.
# Installs Debian's libvirt daemon, QEMU, qemu-utils, libvirt-dev + pkg-config (to build libvirt-python
# from requirements.txt) and genisoimage/cloud-image-utils (cloud-init seed images) when missing, then
# starts virtlogd and libvirtd if they are not running. Without /dev/kvm, VMs run under TCG.
LIBVIRT_PACKAGES := libvirt-daemon-system qemu-system-x86 qemu-utils libvirt-dev pkg-config cloud-image-utils genisoimage
libvirt:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	{ command -v libvirtd && command -v qemu-system-x86_64 && command -v qemu-img && command -v genisoimage \
	  && pkg-config --exists libvirt; } >/dev/null 2>&1 || { \
	  echo "Installing Debian's libvirt/QEMU for the provisioning module: $(LIBVIRT_PACKAGES)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(LIBVIRT_PACKAGES); }; \
	pgrep -x virtlogd >/dev/null || { echo "Starting virtlogd"; $$SUDO virtlogd -d || true; }; \
	pgrep -x libvirtd >/dev/null || { echo "Starting libvirtd"; $$SUDO libvirtd -d || true; }

# The browser console's noVNC client comes from Debian's novnc package (served as /static/novnc/);
# the reverse DNS tests need Debian's PowerDNS with the sqlite3 backend.
novnc:
	@test -f /usr/share/novnc/core/rfb.js || { \
	  echo "Installing Debian's novnc for the browser console"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends novnc; }
	@{ command -v pdns_server && test -f /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql; } >/dev/null 2>&1 || { \
	  echo "Installing Debian's PowerDNS (reverse DNS tests run pdns_server on loopback)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends pdns-server pdns-backend-sqlite3; }

check: venv
	$(PY) scripts/devenv.py -- $(PY) manage.py makemigrations --check --dry-run

# Page latency with a heavy customer (gunicorn + wrk; figures in docs/PERFORMANCE.md). BENCH_ARGS=--help for options.
.PHONY: bench-pages
bench-pages: venv messages
	@command -v wrk >/dev/null || { \
	  echo "Installing Debian's wrk for the page benchmark"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; }
	$(PY) scripts/devenv.py -- $(PY) bench/pages.py $(BENCH_ARGS)

# Money under load: 100 customers top up (sandbox gateway), order and renew for 2 minutes; then audit.
.PHONY: bench-load
bench-load: venv messages
	$(PY) scripts/devenv.py -- $(PY) bench/load.py $(BENCH_ARGS)

# Auto-renewal against pgbench's TPC-B on the same server (scratch databases, dropped afterwards).
# 20,000 orders by default; BENCH_ARGS="--orders 100000" for the full run (docs/PERFORMANCE.md).
.PHONY: bench-renewals
bench-renewals: venv
	$(PY) scripts/devenv.py -- $(PY) bench/renewals.py $(BENCH_ARGS)

# Provisioning on the real hypervisor (qemu:///system): create-job throughput with 1 and 2 Celery worker
# processes, and payment webhook -> VM running through gunicorn + a worker. Tiny VMs named after the scratch
# database, all removed afterwards. BENCH_ARGS="--jobs 20 --webhooks 10" are the defaults.
.PHONY: bench-provisioning
bench-provisioning: libvirt venv messages
	$(PY) scripts/devenv.py -- $(PY) bench/provisioning.py $(BENCH_ARGS)
