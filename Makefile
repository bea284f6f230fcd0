# difts: the two commands a person needs are `make run` and `make test`.
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help install lock run test lint format unit mail bench clean translations account

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: ## create .venv and install the locked Python dependencies (idempotent)
	@bash infra/bootstrap.sh

lock: install ## refresh requirements.lock (pins and hashes) from pyproject.toml's ranges
	@.venv/bin/pip-compile -q --generate-hashes --allow-unsafe --extra dev --strip-extras \
	  --no-emit-find-links --no-emit-index-url --upgrade -o requirements.lock pyproject.toml
	@echo "requirements.lock refreshed: review 'git diff requirements.lock', then make test"

run: install ## run the whole system locally with the demo campaign (Ctrl-C stops it)
	@$(PY) -m infra.stack run

test: install ## lint, start Kafka/PostgreSQL/stripe-mock, run every test, stop them
	@bash infra/test.sh

lint: install ## ruff and mypy only
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: install ## format the code with ruff
	@.venv/bin/ruff format . && .venv/bin/ruff check --fix .

unit: install ## the fast unit tests only (no infrastructure)
	@.venv/bin/pytest -q tests/unit

translations: install ## extract the texts into each service's .po catalogs (then translate them)
	@bash infra/translations.sh update
	@bash infra/translations.sh compile

account: install ## create a back-office account: make account EMAIL=you@example.org ROLE=admin|finance|sponsor [SPONSOR=demo-sponsor]
	@test -n "$(EMAIL)" -a -n "$(ROLE)" || { echo "usage: make account EMAIL=you@example.org ROLE=admin|finance [NAME='Your Name']"; exit 2; }
	@$(PY) -m services.donations migrate >/dev/null 2>&1 || { echo "the donations database could not be migrated: run .venv/bin/python -m services.donations migrate to see why"; exit 1; }
	@$(PY) -m services.donations create-account --email "$(EMAIL)" --name "$(NAME)" $(foreach r,$(subst +, ,$(ROLE)),--role $(r)) $(if $(SPONSOR),--sponsor "$(SPONSOR)")

mail: install ## show the newest emails the SMTP sink kept (make run)
	@$(PY) -m infra.mailbox

bench: install ## benchmarks (they start what they need)
	@$(PY) -m bench

clean: ## remove local state (databases, broker data, mail, logs); keeps caches
	@for s in kafka stripe-mock postgres; do bash infra/$$s.sh stop >/dev/null 2>&1 || true; done
	rm -rf var
