"""Partner statements (PRODUCT.md §9.1): per partner and month a CSV and a self-contained HTML statement.

Read from the published `analytics.partner_statement_lines` and `analytics.partner_balances` only: the money is
dbt's, Python groups and formats it and checks that the lines add up to the balances. `issue` writes a month's
statements once it is locked and rewrites them, revised, when a later run changes them (ops.statement_issues).
"""

from alliance.statements.issue import IssueResult, issue_statements, write_statements
from alliance.statements.lines import StatementError, parse_month

__all__ = ["IssueResult", "StatementError", "issue_statements", "parse_month", "write_statements"]
