# The official Airflow image plus this project (DAGs, alliance + connectors packages, dbt project, config).
# Used by every Airflow component and by the webhook receiver / sandbox in docker-compose.yml.
FROM apache/airflow:3.3.2-python3.11

USER root
COPY --chown=airflow:root . /opt/alliance
USER airflow
WORKDIR /opt/alliance
# The image already has Airflow 3.3.2; install the project and its pinned stack next to it.
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -e /opt/alliance \
 && mkdir -p /opt/airflow/config && cp /opt/alliance/deploy/airflow_local_settings.py /opt/airflow/config/
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/alliance/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ALLIANCE_CONFIG=/opt/alliance/config/alliance.yml \
    PYTHONPATH=/opt/alliance
