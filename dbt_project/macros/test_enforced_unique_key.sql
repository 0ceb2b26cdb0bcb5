{#- Generic test: PostgreSQL enforces the key itself, with a valid unique index on exactly these columns.
    The database refuses a duplicate on every write, so finding that index is as strong as scanning the table for
    duplicates, and costs a catalog lookup instead of a sort of millions of rows. Fails (one row) when the index is
    missing, invalid or on other columns. With `nulls_not_distinct` (a key column may be null) the index must also
    treat nulls as equal, else two rows with a null in the key would both be accepted. -#}
{% test enforced_unique_key(model, columns, nulls_not_distinct=false) %}
{#- structure, not data: an incremental build creates no table, so it leaves these checks to full builds -#}
{{ config(tags=['structure']) }}
select '{{ model.schema }}.{{ model.identifier }}' as relation,
       '{{ columns | sort | join(", ") }}' as expected_unique_key
where not exists (
    select 1
    from pg_index i
    join pg_class c on c.oid = i.indrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = '{{ model.schema }}'
      and c.relname = '{{ model.identifier }}'
      and i.indisunique and i.indisvalid and i.indpred is null
      and (select array_agg(a.attname::text order by a.attname::text)
           from pg_attribute a
           where a.attrelid = c.oid and a.attnum = any(i.indkey)) = array[
          {%- for column in columns | sort %}'{{ column }}'{{ ", " if not loop.last }}{% endfor -%}
      ]::text[]
      and i.indnkeyatts = {{ columns | length }}
      {%- if nulls_not_distinct %}
      and i.indnullsnotdistinct
      {%- endif %}
)
{% endtest %}
