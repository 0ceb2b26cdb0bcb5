-- First start of the warehouse container: the analytics warehouse and Airflow's metadata database.
create database alliance;
create database airflow;

-- Sized for the transform's bulk writes, like the embedded server (alliance/warehouse.py server_settings); applied
-- when the entrypoint starts the server for good. The WAL stays replication-ready here (wal_level replica): backups
-- and replicas are the operator's.
alter system set shared_buffers = '1GB';
alter system set max_wal_size = '8GB';
alter system set checkpoint_timeout = '15min';
