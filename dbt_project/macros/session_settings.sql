{% macro alliance_session_settings() -%}
    {#- One statement setting var('session_settings') (name -> value) on the model's connection, for the session. -#}
    {%- set settings = var('session_settings', {}) -%}
    {%- if settings -%}
        select {% for name, value in settings.items() -%}
            set_config({{ dbt.string_literal(name) }}, {{ dbt.string_literal(value) }}, false)
            {%- if not loop.last %}, {% endif %}
        {%- endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
