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
    min_elapsed_days
from {{ source('raw', 'cfg_alert_rules') }}
