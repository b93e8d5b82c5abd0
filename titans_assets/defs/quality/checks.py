"""Great Expectations suites on the marts, as blocking asset checks (suites live in lib/quality.py)."""

import dagster as dg

from titans_assets.lib import incremental, quality
from titans_assets.resources import WarehouseResource

FCT_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])
FCT_DAILY_METRICS = dg.AssetKey(["marts", "fct_daily_metrics"])


def suite_check_result(suite: quality.SuiteResult, **kwargs) -> dg.AssetCheckResult:
    """A failing blocking expectation fails the check (ERROR: blocks downstream); a failing
    non-blocking one (freshness) shows as a WARN failure, which Dagster does not block on."""
    return dg.AssetCheckResult(
        passed=suite.success and not suite.warnings,
        severity=dg.AssetCheckSeverity.ERROR if not suite.success else dg.AssetCheckSeverity.WARN,
        description=suite.summary(),
        metadata=suite.to_metadata(),
        **kwargs,
    )


def _suite_check(
    asset_key: dg.AssetKey, suite_factory, description: str, sliceable: bool = False
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name=f"gx_{asset_key.path[-1]}",
        blocking=True,
        description=description,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        db, settings = warehouse.database(), warehouse.settings()
        params, today = settings.check_params(), settings.today()
        if sliceable:
            return suite_check_result(incremental.run_suite_scoped(db, suite_factory, params, today))
        return suite_check_result(
            quality.run_suite(suite_factory(), db.sqlalchemy_url(), params=params, today=today)
        )

    return _check


mart_checks = [
    _suite_check(
        FCT_TRANSACTIONS,
        quality.fct_transactions_suite,
        "Clean transactions: required fields, unique ids, labels normalized, sign matches Type, "
        "amount bounds; freshness warns only. After an incremental build, on the rows it replaced "
        "(when the check passed on the build before, with the same expectations).",
        sliceable=True,
    ),
    _suite_check(
        FCT_DAILY_METRICS,
        quality.fct_daily_metrics_suite,
        "Daily metrics: every calendar day present, reconciles to the cent with fct_transactions, "
        "net = income - expenses.",
    ),
]

defs = dg.Definitions(asset_checks=mart_checks)
