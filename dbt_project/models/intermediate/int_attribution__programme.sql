-- §8 programme terms on the configured model's credited rows (int_attribution__holds): volume tiers, caps, holds.
-- A programme month is (destination, referrer, UTC month of the order), across every contract in force during it;
-- earlier orders come first by (ordered_at, order_id in (length, text) order). A commissioned row is a credited row
-- of the configured model that is neither held, rejected nor approved after its lock date (programme_state null).
--   Tiers (percent only): with n earlier commissioned orders in the programme month, the rate of the row's own
--   contract's last tier with from_orders <= n, else the base rate; a first order earns new_customer_rate below the
--   first tier and the higher of the two from a tier on.
--   Caps: amount = rate x net commissionable x FX x credit (flat: amount x credit, 0 with nothing commissionable),
--   then cap_per_order, then rounded to cents (= held_rc for a held row), then the row's own cap_per_month less
--   what the earlier commissioned orders of the month finally earned (ops.capped_running_sum, alliance/migrations/
--   0010: each row earns min(amount, max(0, cap - earlier earnings)); no cap = the whole amount).
--   cap_room is that monthly room. tier_from_orders names the tier a row earned.
-- Rows of the other models and organic rows pass through with null programme columns. The rules themselves are the
-- macro programme_terms (macros/programme_terms.sql).
-- Ephemeral: compiled into int_order_attribution's statement. A full build sees every row of each programme month;
-- an incremental run only the orders it recomputes, so their programme columns are provisional until
-- int_order_attribution's post-hook (rerate_programme_months) recomputes the months they touch from the stored rows.
{{ config(materialized='ephemeral') }}
with programme as (
{{ programme_terms(ref('int_attribution__holds')) }}
)

select * from programme
union all
select
    h.*,
    null::date, null::boolean, null::bigint, null::numeric, null::bigint, null::numeric, null::numeric,
    null::numeric, null::numeric, null::numeric, null::numeric, null::numeric, null::numeric
from {{ ref('int_attribution__holds') }} as h
where not (h.is_commission_model and h.referrer_partner_id is not null)
