{#- WooCommerce `*_gmt` fields are UTC wall-clock times without a zone suffix; a suffix, if present, is honoured. -#}
{% macro woocommerce_gmt(expr) -%}
    case
        when nullif(trim({{ expr }}), '') is null then null
        when trim({{ expr }}) ~ '(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' then trim({{ expr }})::timestamptz
        else (trim({{ expr }})::timestamp at time zone 'UTC')
    end
{%- endmacro %}
