-- Objectives per partner, month (first day) and metric.
select
    partner_id,
    date_trunc('month', month::timestamp)::date as objective_month,
    metric,
    target
from {{ source('raw', 'cfg_objectives') }}
