#!/usr/bin/env bash
# The servers CI's integration tests need (pytest -m integration; under CI=true they fail without them):
# Debian's prometheus package (prometheus + promtool) and PostgreSQL, started as the postgres user with a role and
# a database for the multi-machine hyperopt test. Idempotent: a machine that kept them from a previous run is fine.
# Prints the PostgreSQL URL for the tests on its last line.
set -euo pipefail
# Everything but the URL goes to stderr: a fresh machine's apt, pg_createcluster or pg_ctlcluster may print to stdout,
# and the caller captures stdout as the URL. The setup runs with that descriptor closed: a server it starts
# (PostgreSQL's postmaster) inherits every open descriptor, and holding the caller's pipe open kept `| tail -n 1`
# waiting for ever (CI timed out at 5400 s on this).
exec 3>&1 1>&2
export DEBIAN_FRONTEND=noninteractive
started=$SECONDS
setup() {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus postgresql >/dev/null
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if ! pg_lsclusters -h | grep -q "^$version main "; then
    pg_createcluster "$version" main >/dev/null
  fi
  if ! pg_lsclusters -h | grep -q "^$version main .* online "; then
    pg_ctlcluster "$version" main start
  fi
  # The Debian package may start its own Prometheus where an init system exists; the tests use their own on free ports.
  su postgres -c "psql -v ON_ERROR_STOP=1 -qc \"DO \\\$\\\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bsmart_ci') THEN
      CREATE ROLE bsmart_ci LOGIN PASSWORD 'bsmart_ci';
    END IF; END \\\$\\\$;\""
  if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'bsmart_ci'\"" | grep -q 1; then
    su postgres -c "createdb -O bsmart_ci bsmart_ci"
  fi
}
setup 3>&-
echo "services ready in $((SECONDS - started))s: $(prometheus --version 2>&1 | head -1); PostgreSQL $version" >&2
echo "postgresql+psycopg://bsmart_ci:bsmart_ci@127.0.0.1:5432/bsmart_ci" >&3
