-- Alert rules of the config's rules file, one row per rule.
select
    rule_id,
    rule_kind,
    kpi,
    comparison,
    threshold,
    trailing_days,
    min_volume_kpi,
    min_volume,
    min_elapsed_days,
    coalesce(method, case when rule_kind = 'trailing' then 'change' end) as method,
    coalesce(min_training_days, case when rule_kind = 'trailing' then 1 end) as min_training_days,
    min_day_volume_kpi,
    min_day_volume
from {{ source('raw', 'cfg_alert_rules') }}
