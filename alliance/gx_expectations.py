"""alliance's own GX expectation, registered with GX when this module is imported (before a context loads suites)."""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.expectations import UnexpectedRowsExpectation


class ExpectNoUnexpectedRows(UnexpectedRowsExpectation):
    """GX's `unexpected_rows_expectation`, counting the rows only.

    GX's own fetches the unexpected rows as well as their count, so every query (the e-mail scan over each text
    column, the reconciliations, freshness) ran twice; the gate samples a failure's rows itself (gate._sample, with
    e-mails masked), so the count is all it needs from GX.
    """

    metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.row_count",)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> dict:
        count = metrics["unexpected_rows_query.row_count"]
        return {"success": count == 0, "result": {"observed_value": count}}
