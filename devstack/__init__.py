"""The development stack around the product: the sandbox partner APIs, `make demo`, the local Airflow launcher and
the webhook-to-published freshness harness.

Kept in the repository for `make demo`, the tests and the benches; not shipped in the wheel (pyproject.toml builds
`alliance` and `connectors` only). It imports `alliance` and `connectors`; they never import it, except the CLI's
dev commands (`alliance demo`, `alliance sandbox`, `alliance airflow` and the demo-config hook), lazily.
"""
