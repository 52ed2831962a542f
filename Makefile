# PromptForge: `make run` serves the API on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch is pinned and installed first with pip, so nothing pulls a multi-GB CUDA build (adr/0007).
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= --disable-pip-version-check -q

.PHONY: install install-dev run test seed-demo bench clean compose-config

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(PIP) install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed clients/python/pyproject.toml
	$(PIP) install $(PIP_FLAGS) -e '.[dev]'
	$(PIP) install $(PIP_FLAGS) -e 'clients/python[cli]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/promptforge serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: install-dev
	$(PY) -m pytest -q $(PYTEST_ARGS)

seed-demo: install
	$(VENV)/bin/promptforge seed-demo

compose-config:
	docker compose -f docker-compose.yml config -q

clean:
	rm -rf $(VENV) var .pytest_cache
