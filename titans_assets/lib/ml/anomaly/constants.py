"""The anomaly model's components, default weights, injected kinds and tuning constants, shared by
its modules."""

COMPONENTS = (
    "amount",
    "new_merchant",
    "atypical_category",
    "unusual_day",
    "duplicate",
    "burst",
    "frequency",
    "isolation",
)
DEFAULT_WEIGHTS = {
    "amount": 0.95,
    "new_merchant": 0.9,
    "atypical_category": 0.85,
    "unusual_day": 0.8,
    "duplicate": 0.85,
    "burst": 0.9,
    "frequency": 0.5,
    "isolation": 0.0,
}
INJECTED_KINDS = (
    "amount_spike",
    "atypical_merchant",
    "duplicate_charge",
    "small_charge_burst",
    "new_merchant_large",
    "unusual_day",
)

_SEP = "\x1f"
_INCOME_CAT = "(income)"
_NO_CAT = "(uncategorized)"
_MIN_SCALE = 0.1  # log units: a fixed price does not make every cent a huge z-score
_MAD_K = 1.4826
_IF_COLUMNS = ("is_business_day", "log_abs_amount", "is_expense", "is_round_10", "has_cents")
_STAT_FEATURES = (
    "z_amount",
    "log_merchant_n",
    "cat_surprise",
    "off_day_surprise",
    "twins",
    "small_surprise",
    "day_excess",
)
_REASON_LEVEL = 0.3  # a component whose weighted evidence reaches this is reported (and counts in the score)
# shrinkage of the amount statistics, in pseudo-rows of the parent level: a group of n rows weighs
# n / (n + k) against its parent (merchant+category -> merchant -> category -> all expenses or income);
# a median settles with fewer rows than a spread does
_SHRINK_MEDIAN = 2.0
_SHRINK_SCALE = 10.0
_Z_CENTRE = 3.0  # the shrunk z at which the amount evidence is half-way
