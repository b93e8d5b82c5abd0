"""Machine learning: one feature definition, four models, their evaluation and promotion rules.

Plain Python (no Dagster, no MLflow imports at module level) so the Dagster assets, the BentoML
service and the tests all use exactly the same code.
"""
