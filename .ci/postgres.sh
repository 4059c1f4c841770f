#!/usr/bin/env bash
# Start Debian's PostgreSQL with a `todo` role and a `todo_test` database,
# listening on all addresses so pods can reach it at the node's IP, with TLS on
# (a self-signed certificate for localhost/127.0.0.1) so clients can use the
# sslmode=require / verify-full and channel_binding=require a hosted PostgreSQL
# such as Neon needs. Idempotent: a second run changes nothing and only reloads.
set -euo pipefail
conf=$(ls -d /etc/postgresql/*/main | head -n1)
version=$(basename "$(dirname "$conf")")
restart=no
grep -q "^listen_addresses = '\*'" "$conf/postgresql.conf" \
  || { echo "listen_addresses = '*'" >> "$conf/postgresql.conf"; restart=yes; }
grep -q "10.244.0.0/16" "$conf/pg_hba.conf" || printf '%s\n' \
  "host all all 10.244.0.0/16 scram-sha-256" "host all all 172.16.0.0/12 scram-sha-256" >> "$conf/pg_hba.conf"

# TLS. Debian enables ssl only when the snakeoil certificate exists (package
# ssl-cert); ours also names 127.0.0.1, so sslmode=verify-full works against it
# with sslrootcert=$conf/tls/server.crt.
tls="$conf/tls"
if [ ! -s "$tls/server.crt" ] || [ ! -s "$tls/server.key" ]; then
  install -d -o postgres -g postgres -m 755 "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tls/server.key" -out "$tls/server.crt" 2>/dev/null
  chown postgres:postgres "$tls/server.key" "$tls/server.crt"
  chmod 600 "$tls/server.key"
  chmod 644 "$tls/server.crt"
fi
# conf.d is included after the main file's own (commented or `off`) ssl lines.
printf '%s\n' "ssl = on" "ssl_cert_file = '$tls/server.crt'" "ssl_key_file = '$tls/server.key'" \
  > "$conf/conf.d/tls.conf"
chown postgres:postgres "$conf/conf.d/tls.conf"

# ssl and pg_hba.conf take a reload; listen_addresses a restart.
if pg_lsclusters --no-header "$version" main | grep -q online && [ "$restart" = no ]; then
  pg_ctlcluster "$version" main reload
else
  pg_ctlcluster "$version" main restart || pg_ctlcluster "$version" main start
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='todo'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE todo LOGIN SUPERUSER PASSWORD 'todo'\""
su postgres -c "psql -qtc \"SELECT 1 FROM pg_database WHERE datname='todo_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE DATABASE todo_test OWNER todo'"
