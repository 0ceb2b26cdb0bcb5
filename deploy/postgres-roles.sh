#!/usr/bin/env bash
# First start of the warehouse container (after 10-alliance.sql): one login per component, each with its own
# password from the environment, and the databases' owners. Grants on tables come from the migrations
# (alliance/migrations/0010), which `alliance warehouse migrate` applies as alliance_owner.
#   alliance_owner             owns the alliance database; applies migrations, runs `alliance bi-url` (CREATEROLE)
#   alliance_loader            partner pulls, webhook inbox processor
#   alliance_webhook_receiver  the receiver's HTTP side: INSERT on raw.webhook_inbox only
#   alliance_transformer       dbt, gate, publish, alerts
#   alliance_airflow           owns the airflow database (metadata, Celery results) and nothing else
#   alliance_bi                NOLOGIN; `alliance bi-url` makes its login member alliance_bi_reader
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_pw="$ALLIANCE_OWNER_PASSWORD" -v loader_pw="$ALLIANCE_LOADER_PASSWORD" \
  -v receiver_pw="$ALLIANCE_WEBHOOK_RECEIVER_PASSWORD" -v transformer_pw="$ALLIANCE_TRANSFORMER_PASSWORD" \
  -v airflow_pw="$ALLIANCE_AIRFLOW_DB_PASSWORD" <<'SQL'
create role alliance_owner login createrole password :'owner_pw';
create role alliance_loader login password :'loader_pw';
create role alliance_webhook_receiver login password :'receiver_pw';
create role alliance_transformer login password :'transformer_pw';
create role alliance_airflow login password :'airflow_pw';
create role alliance_bi nologin;
grant alliance_loader, alliance_webhook_receiver, alliance_transformer, alliance_bi to alliance_owner
  with admin option;
alter database alliance owner to alliance_owner;
alter database airflow owner to alliance_airflow;
revoke connect on database alliance, airflow from public;
grant connect on database alliance to alliance_owner, alliance_loader, alliance_webhook_receiver,
  alliance_transformer, alliance_bi;
grant connect on database airflow to alliance_airflow;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname alliance \
  -c "alter schema public owner to alliance_owner"
