#!/usr/bin/env bash
# Start Debian's PostgreSQL with a `todo` role and a `todo_test` database,
# listening on all addresses so pods can reach it at the node's IP.
set -euo pipefail
conf=$(ls -d /etc/postgresql/*/main | head -n1)
version=$(basename "$(dirname "$conf")")
grep -q "^listen_addresses = '\*'" "$conf/postgresql.conf" || echo "listen_addresses = '*'" >> "$conf/postgresql.conf"
grep -q "10.244.0.0/16" "$conf/pg_hba.conf" || printf '%s\n' \
  "host all all 10.244.0.0/16 scram-sha-256" "host all all 172.16.0.0/12 scram-sha-256" >> "$conf/pg_hba.conf"
pg_ctlcluster "$version" main restart || pg_ctlcluster "$version" main start
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='todo'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE todo LOGIN SUPERUSER PASSWORD 'todo'\""
su postgres -c "psql -qtc \"SELECT 1 FROM pg_database WHERE datname='todo_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE DATABASE todo_test OWNER todo'"
