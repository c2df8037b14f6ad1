-- create_database (Hive DDL, run by the athena engine once per configuration).
-- Placeholder, substituted by server/athena_sql.c with a checked value only:
--   {{database}}  the Glue database as a backquoted identifier ([a-z0-9_]{1,128})
CREATE DATABASE IF NOT EXISTS {{database}}
