-- §9.1 statements total to partner_balances, to the cent, in both directions: for every (partner, month, direction,
-- counterparty) the in-total lines of partner_statement_lines add up to balance_rc of that (referrer, destination,
-- month), and every balance row has its statement in both directions (a month with held rows only totals 0).
-- A failing row names the (referrer, destination, month, direction) and both numbers.
-- A full refresh sums every line. An incremental run reads the section totals the table's triggers keep by
-- difference as its lines are written (ops.statement_line_totals, post-hook keep_statement_line_totals), the same
-- sums without reading millions of lines; partner_balances, rebuilt whole each run, is compared whole either way.
with sections as (
    {%- if flags.FULL_REFRESH %}
    select referrer_partner_id, destination_partner_id, month, direction,
           sum(amount_rc) filter (where in_totals) as lines_rc
    from {{ ref('partner_statement_lines') }}
    group by referrer_partner_id, destination_partner_id, month, direction
    {%- else %}
    select referrer_partner_id, destination_partner_id, month, direction,
           case when in_totals_count > 0 then lines_rc end as lines_rc
    from ops.statement_line_totals
    where table_oid = '{{ ref('partner_statement_lines') }}'::regclass and line_count > 0
    {%- endif %}
),

balances as (
    select b.referrer_partner_id, b.destination_partner_id, b.month, d.direction, b.balance_rc
    from {{ ref('partner_balances') }} as b
    cross join (values ('earned'), ('owed')) as d (direction)
)

select
    coalesce(b.referrer_partner_id, s.referrer_partner_id)       as referrer_partner_id,
    coalesce(b.destination_partner_id, s.destination_partner_id) as destination_partner_id,
    coalesce(b.month, s.month)                                   as month,
    coalesce(b.direction, s.direction)                           as direction,
    b.balance_rc,
    s.lines_rc
from balances as b
full outer join sections as s
    on s.referrer_partner_id = b.referrer_partner_id
   and s.destination_partner_id = b.destination_partner_id
   and s.month = b.month
   and s.direction = b.direction
where coalesce(b.balance_rc, 0) <> coalesce(s.lines_rc, 0)
   or (b.balance_rc is null and s.lines_rc is not null)
   or (b.balance_rc is not null and s.direction is null)
