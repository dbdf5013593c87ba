-- The county hub's database. Run once as the postgres superuser:
--   psql -h 127.0.0.1 -U postgres -f deploy/postgres/setup.sql
-- The schema itself is created and migrated by the hub at start (Alembic).
CREATE ROLE sanji LOGIN;
CREATE DATABASE sanji OWNER sanji ENCODING 'UTF8' TEMPLATE template0;
