# django_jobs developer tasks. Needs only GNU make and Python 3.11+; every target creates
# the virtualenv it needs. Variables (override on the command line):
#   PYTHON       interpreter that creates the venv        (default: python3)
#   VENV         virtualenv directory                      (default: .venv)
#   DBS          databases `make test` runs against        (default: sqlite)
#   DJANGO       pip requirement for Django in this venv   (e.g. 'Django>=6.1,<6.2')
#   PYTEST_ARGS  extra pytest arguments
#   TEST_PARALLEL   1: `make test` runs the DBS at once      (default: one after another)
#   WAGTAIL_VENV    virtualenv of `make wagtail`            (default: integration/wagtail/.venv)
#   WAGTAIL_DJANGO  pip requirement for Django in it        (default: 'Django>=6.1,<6.2')
#   WAGTAIL_DB      its database: sqlite or postgres        (default: sqlite)

PYTHON ?= python3
VENV ?= .venv
DBS ?= sqlite
DJANGO ?=
PYTEST_ARGS ?=

PY := $(abspath $(VENV))/bin/python
SPHINX := $(abspath $(VENV))/bin/sphinx-build
RUFF := $(abspath $(VENV))/bin/ruff

# What `make test` installs: the package with its dev extra, the drivers DBS needs, and
# the Django release asked for (installed together so pip resolves them as one set).
BASE_REQS := -e . $(DJANGO)
DEV_REQS := -e .[dev] \
	$(if $(findstring postgres,$(DBS)),psycopg[binary]) \
	$(if $(findstring mysql,$(DBS)),mysqlclient) \
	$(DJANGO)

.PHONY: help venv install dev example test lint format docs migrations-check bench-smoke browser install-check wagtail clean

help:
	@echo "make example           run the example project's demo (creates $(VENV))"
	@echo "make test              run the tests on DBS='$(DBS)' (sqlite postgres mysql)"
	@echo "make lint              ruff check and ruff format --check"
	@echo "make docs              build the Sphinx docs with warnings as errors"
	@echo "make migrations-check  fail when a model change has no migration"
	@echo "make bench-smoke       a short benchmark run"
	@echo "make browser           admin tests in headless Chromium (sqlite)"
	@echo "make install-check     the README's install steps on a fresh venv, from the wheel"
	@echo "make wagtail           a Wagtail site whose tasks run on django_jobs (own venv)"

$(PY):
	$(PYTHON) -m venv $(VENV)

venv: $(PY)

# Install the requirement set named by variable $(1) once per venv: a stamp named after
# the set (and newer than pyproject.toml) means it is in place, so repeat runs cost nothing.
# The variable is passed by name because a Django spec such as 'Django>=6.1,<6.2' has a
# comma, which would split the arguments of $(call).
define pip_install
	@key=$$(printf '%s' '$(strip $($(1)))' | cksum | cut -d' ' -f1); \
	stamp='$(VENV)/.installed-'$$key; \
	if [ ! -f "$$stamp" ] || [ pyproject.toml -nt "$$stamp" ]; then \
		echo "pip install $(strip $($(1)))"; \
		$(PY) -m pip install --quiet --disable-pip-version-check \
			$(foreach r,$($(1)),'$(r)') && touch "$$stamp"; \
	fi
endef

install: $(PY)
	$(call pip_install,BASE_REQS)

dev: $(PY)
	$(call pip_install,DEV_REQS)

example: install
	cd example_project && $(PY) manage.py migrate --noinput -v 0
	cd example_project && $(PY) manage.py demo

# One pytest run per database; the first failing database stops the run with its status.
# TEST_PARALLEL=1 runs the databases at once, each into a log printed whole when all are
# done (CI: process tests spend most of their time waiting on workers, not on the CPU).
test: dev
ifeq ($(TEST_PARALLEL),1)
	@logs=$$(mktemp -d); \
	for db in $(DBS); do \
		(DJANGO_JOBS_DB=$$db $(PY) -m pytest -m "not browser" -p no:cacheprovider $(PYTEST_ARGS) \
			>"$$logs/$$db.log" 2>&1; echo $$? >"$$logs/$$db.rc") & \
	done; wait; status=0; \
	for db in $(DBS); do \
		echo "== pytest on $$db ($$($(PY) -c 'import django; print("Django", django.get_version())'))"; \
		cat "$$logs/$$db.log"; rc=$$(cat "$$logs/$$db.rc"); [ "$$rc" = 0 ] || status=$$rc; \
	done; rm -rf "$$logs"; exit $$status
else
	@set -e; for db in $(DBS); do \
		echo "== pytest on $$db ($$($(PY) -c 'import django; print("Django", django.get_version())'))"; \
		DJANGO_JOBS_DB=$$db $(PY) -m pytest -m "not browser" $(PYTEST_ARGS); \
	done
endif

lint: dev
	$(RUFF) check .
	$(RUFF) format --check .

format: dev
	$(RUFF) check --fix .
	$(RUFF) format .

docs: dev
	$(SPHINX) -W --keep-going -b html docs docs/_build/html

migrations-check: dev
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) -m django makemigrations --check --dry-run
	cd example_project && $(PY) manage.py makemigrations --check --dry-run

bench-smoke: dev
	$(PY) bench/run.py --smoke

browser: dev
	DJANGO_JOBS_DB=sqlite $(PY) -m pytest -m browser $(PYTEST_ARGS)

# Needs no venv of its own: it builds the wheel and installs it into a new one.
install-check:
	.ci/install-check $(PYTHON)

# A Wagtail site (integration/wagtail) with TASKS naming django_jobs' backend: Wagtail from
# PyPI in a virtualenv of its own, never a dependency of the package. A repeat run reuses
# the venv (its install stamp) and only runs the check, on a new database each time.
WAGTAIL_VENV ?= integration/wagtail/.venv
WAGTAIL_DJANGO ?= Django>=6.1,<6.2
WAGTAIL_DB ?= sqlite
WAGTAIL_PY := $(abspath $(WAGTAIL_VENV))/bin/python
WAGTAIL_REQS := -e . wagtail>=8.0,<9 $(WAGTAIL_DJANGO) \
	$(if $(findstring postgres,$(WAGTAIL_DB)),psycopg[binary])

$(WAGTAIL_PY):
	$(PYTHON) -m venv $(WAGTAIL_VENV)

wagtail: VENV := $(WAGTAIL_VENV)
wagtail: PY := $(WAGTAIL_PY)
wagtail: $(WAGTAIL_PY)
	$(call pip_install,WAGTAIL_REQS)
	cd integration/wagtail && WAGTAIL_DB=$(WAGTAIL_DB) $(WAGTAIL_PY) check_site.py

clean:
	rm -rf docs/_build example_project/db.sqlite3* example_project/outbox
