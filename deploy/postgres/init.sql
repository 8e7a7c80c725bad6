-- Run once by the postgres image's entrypoint on an empty data directory
-- (mounted into /docker-entrypoint-initdb.d by deploy/compose.yaml), as POSTGRES_USER (`ur`),
-- which therefore owns them. One database per service: no service reads another's tables.
CREATE DATABASE ur_intake;
CREATE DATABASE ur_review;
CREATE DATABASE ur_authorization;
