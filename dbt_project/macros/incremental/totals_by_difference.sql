{#- Totals kept incremental by difference (int_partner_daily_totals, int_partner_monthly_totals). -#}

{#- The totals after this run: the contributions (a CTE `contributions` of `keys` and `measures`) summed per key and,
    in an incremental run, added to the key's stored totals; keys no contribution touches are left as they are. -#}
{% macro totals_with_contributions(keys, measures) %}
changes as (
    select
        {{ keys | join(', ') }}
        {%- for m in measures %},
        sum({{ m }}) as {{ m }}
        {%- endfor %}
    from contributions
    group by {{ keys | join(', ') }}
)

select
    c.{{ keys | join(', c.') }}
    {%- for m in measures %},
    {%- if is_incremental() %}
    coalesce(t.{{ m }}, 0) + c.{{ m }} as {{ m }}
    {%- else %}
    c.{{ m }}
    {%- endif %}
    {%- endfor %}
from changes as c
{%- if is_incremental() %}
left join {{ this }} as t on {% for k in keys %}t.{{ k }} = c.{{ k }}{% if not loop.last %} and {% endif %}{% endfor %}
{%- endif %}
{% endmacro %}
