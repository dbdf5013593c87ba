#!/bin/sh
# The county hub's PostgreSQL: role, database and settings. Idempotent; run as a superuser:
#   sudo -u postgres sh deploy/postgres/setup.sh            # local socket, peer auth
#   PGHOST=127.0.0.1 PGUSER=postgres sh deploy/postgres/setup.sh
# The schema itself is created and migrated by the hub at start (Alembic), after a backup.
set -eu
DB="${SANJI_DB:-sanji}"
ROLE="${SANJI_ROLE:-sanji}"
psql -v ON_ERROR_STOP=1 -d postgres -q <<SQL
SELECT 'CREATE ROLE "$ROLE" LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
SELECT 'CREATE DATABASE "$DB" OWNER "$ROLE" ENCODING ''UTF8'' TEMPLATE template0'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
-- A request never waits more than a minute on a lock or a statement; an idle transaction is ended.
ALTER ROLE "$ROLE" IN DATABASE "$DB" SET statement_timeout = '60s';
ALTER ROLE "$ROLE" IN DATABASE "$DB" SET lock_timeout = '30s';
ALTER ROLE "$ROLE" IN DATABASE "$DB" SET idle_in_transaction_session_timeout = '5min';
ALTER DATABASE "$DB" SET timezone = 'UTC';
REVOKE ALL ON DATABASE "$DB" FROM PUBLIC;
GRANT CONNECT, TEMP ON DATABASE "$DB" TO "$ROLE";
SQL
psql -v ON_ERROR_STOP=1 -d "$DB" -q -c "ALTER SCHEMA public OWNER TO \"$ROLE\"; REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
echo "database $DB owned by $ROLE is ready; the hub's config: db = \"postgresql://$ROLE@127.0.0.1/$DB\""
echo "give the role a password (ALTER ROLE $ROLE PASSWORD ...) or map it in pg_hba.conf; backups: sanji backup (pg_dump)"
