-- Databases of the three services when PostgreSQL runs under docker compose.
CREATE DATABASE donations;
CREATE DATABASE ledger;
CREATE DATABASE notifications;
