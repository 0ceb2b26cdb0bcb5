-- First start of the warehouse container: the analytics warehouse and Airflow's metadata database.
create database alliance;
create database airflow;
