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


{% macro postgres__get_test_sql(main_sql, fail_calc, warn_if, error_if, limit) -%}
    {#- Data tests get no pre-hook and each runs on a fresh connection: the settings go first in the test's own
        statement (PostgreSQL returns the last statement's rows, the test's counts). dbt's dispatch takes this root
        project macro before its default__get_test_sql, which builds the rest unchanged. -#}
    {{ alliance_session_settings() }};
    {{ dbt.default__get_test_sql(main_sql, fail_calc, warn_if, error_if, limit) }}
{%- endmacro %}
