{#- Marts land in exactly target.schema (the build schema, later swapped into analytics);
    models configured with +schema: work land in <target.schema>_work. No other prefixing. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
