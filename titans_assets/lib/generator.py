"""Realistic synthetic bank / ledger exports, with ground truth kept outside the landing folder.

`generate(out_dir, ...)` writes one CSV per account in the canonical Titans Finance format
(`Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL`), newest-first
like real exports, and writes the ground truth (`anomalies.csv`, `label_noise.csv`, `manifest.json`)
to `labels_dir` (default `out_dir.parent / "labels"`), which the pipeline never loads: only the
anomaly model's evaluation reads `anomalies.csv` there (TITANS_LABELS_DIR), to score its holdout.
`report(landing_dir)` summarises what was written (category shares, amount quantiles, recurring
intervals, weekday and month shares) so a change to the generator shows up as numbers.

Everything below is a deliberate modelling choice; the parameters live in the tables of this module.

Accounts
    `business_checking` (income, rent, contractor payroll, bills, write-offs; ACH / transfer / check /
    debit card / cash), `business_credit_card` (subscriptions, meals, travel, fuel, supplies,
    equipment; credit_card, PayPal descriptors paid by PayPal), `personal_card` (groceries, coffee,
    entertainment, vacations; debit_card). `ledger` is the three combined in one file, like the
    original Titans ledger (used for the committed fixture). File name = `<account>.csv`.
    `business_savings` (opt-in, not a default) holds only transfers.

Transfers between the accounts (`_transfer_plan`, own random stream)
    Checking pays the business card's statement balance every month (`PAYMENT THANK YOU` on the
    card, `ONLINE TRANSFER TO CARD ...1234` / `CREDIT CRD AUTOPAY` on checking), funds the personal
    account on the first business day (last month's personal spending, rounded up to 100) and, with
    `business_savings`, moves money to savings and back. Both sides are written, into the two
    accounts' files, -2..+3 days apart, no category, payment method bank_transfer (QIF: `L[Account]`);
    never made invalid or anomalous. Ground truth: `transfers.csv` (pair_id, kind, amount, out_/in_
    account, file, line, date), written whenever the accounts allow a transfer. They count in `rows`.

Volume and span
    Base rates (rows per month: `_entries()` `per_month` plus the recurring items of
    `_recurring_specs()`) give about 136 rows/month for the three default accounts, ~3,200 rows for
    the default 2 years.
    `years=Y` uses the base rates over Y years (the number of discretionary rows is Poisson).
    `rows=N` is exact: N data rows in total across the files (invalid rows included). The span is
    2 years, shortened (never below 31 days) when N is below the base volume of 2 years, so a small
    sample looks like a normal month rather than a thin two years; above it, only the discretionary
    streams are scaled up (recurring items stay monthly: rent is still paid once a month).
    If both are given (API only), Y sets the span and N the count. Dates end at `end_date`
    (default today, so demo data is fresh).

Amounts (cents, signed: expenses negative, income positive)
    Each (account, category, merchant) entry has a log-normal amount: median and sigma in
    `_ENTRIES` (e.g. coffee 6.50 / 0.35, groceries 52-165 / 0.5, hotels 240 / 0.45). Categories with
    real heavy tails get a Pareto multiplier on a fraction of rows (`_TAILS`: computer_equipment 10%
    with alpha 1.5, rent extras 15% alpha 1.2, furniture, travel, repairs, professional fees...),
    capped at 30x. Cash withdrawals are multiples of 20. Recurring items have fixed prices with small
    price changes (see below).

Descriptions (bank style, never the clean name)
    Every merchant has several descriptor templates with weights (`_MERCHANTS`): store numbers,
    cities, `MM/DD`, reference codes (`AMZN MKTP US*2K4RT1`, `SQ *BLUE BOTTLE COFFEE 4521 OAKLAND CA`,
    `POS PURCHASE SHELL 0041 10/07`, `ADOBE *CREATIVE CLD`), truncation as card networks do it
    (`SOUTHWES`, `TRADER JOE S`, `aws.amazon.coWA`), case variation (`Amazon.com`). Placeholders are
    derived from a per-row 64-bit token, so a duplicated charge has the identical text. Each
    merchant has a few stores, the first one the most visited. Text alone is not enough: Amazon is
    used for office_supplies, hardware, software, computer_equipment, furniture, home_office, other
    and entertainment; Costco / Walmart / Target for food, supplies, fuel, other; Home Depot for
    repairs, maintenance, hardware, supplies, home_office; Apple (APPLE.COM/BILL) for software,
    entertainment and other; Nopa for meals_entertainment (business) and food (personal); checks to
    the landlord, accountant, cleaner and handyman all read `CHECK 1043`. `Reference` holds the
    clean vendor or client name.

Recurring items (`_recurring`)
    Rent on the 1st (posted the next business day, 12% of months 1-6 days late, +3-5% at a lease
    anniversary); storage unit on the 6th; two contractors paid every other Friday (rate x hours,
    hours ~ N(76, 6) and N(60, 8)); accountant retainer on the 20th; phone (day 24, small overages)
    and internet (day 17, one price change) bills; utilities on the 10th with winter peak
    (+35% cosine); car lease, insurance, annual registration; bank fee on the last business day;
    cleaning on the 5th. Nine software subscriptions on fixed days of the month (card postings are
    not moved off weekends), each with a 50-70% chance of one price change (+5-20%) at a random
    month; an annual licence; personal streaming, music, gym, cloud storage. Income: two retainer
    clients invoiced on the 1st (net 30 and net 15) who pay late (65% within -4..+3 days of the due
    date, 25% log-normal ~9 days late, 10% 25-50 days late), plus irregular project invoices from
    eight clients (Zipf-like weights) on business days. About 6% of invoices, all from the smaller
    clients, are written off as `bad_debts` (Status `written_off`), more often at quarter/year end.

Calendar (`_Calendar`)
    Day weights per profile: business spending on weekdays (Sat 0.2, Sun 0.08), 10% on US federal
    holidays, x0.4 in Christmas week, x1.25 in the last 3 days of the month (restocking before the
    close); personal spending peaks Fri-Sun, +15% around paydays (1st-3rd, 15th-16th), +30% in
    December (+50% more on 20-24 Dec); equipment and furniture x1.8 in December and x1.4 at quarter
    ends (budget flush); tax preparation x3 in February-April; B2B vendors (accountant, lawyer,
    cleaner, HVAC, ULINE...) and ACH postings only on business days. Business trips (~0.9/month,
    2-4 weekdays) concentrate hotels, taxis and parking on trip days and flights 7-30 days before.
    Two vacations a year (7-12 days in summer, 5-8 days around New Year) nearly silence the business
    card (x0.04) and move personal travel onto those days: gaps like a real year.

Label noise (`label_noise`, default 2%)
    That fraction of expense rows (not anomalies, not invalid rows) has its Category replaced by a
    near-duplicate (`_NEAR`: food vs meals_entertainment, vehicle vs vehicle_expenses, office_supplies
    vs supplies, hardware vs computer_equipment, maintenance vs repairs...). Listed in
    `label_noise.csv` (file, line_number, true_category, written_category).

Anomalies (`anomaly_rate`, default 1% of rows; exact count = round(rate x rows))
    - `amount_spike`: a purchase at 8-20x its merchant's median (the largest over its categories);
    - `duplicate_charge`: the same purchase again, same text and amount, on the same day or (30%,
      unless the descriptor shows the date) the next; the original is never made invalid;
    - `atypical_merchant`: a merchant from an unrelated category under this row's category (e.g. a
      cinema as office_supplies);
    - `unusual_day`: the CSV has no time column, so "unusual time" is expressed honestly as a charge on
      a weekend or public holiday from a merchant seen at least 5 times in the account that otherwise
      only ever posts on business days (accountant, cleaner, HVAC, ULINE, bank fees...);
    - `small_charge_burst`: 2-8 charges of 0.50-4.99 at one never-seen merchant on one day or the
      next (card testing);
    - `new_merchant_large`: a never-seen merchant with 2,000-15,000 (a wire on checking).
    Each anomalous row is listed in `anomalies.csv` (file, line_number, date, description, amount,
    anomaly_type); the CSV itself carries no hint. With 7 or more anomaly rows every type appears at
    least once. Anomalies are never label-noised nor made invalid.

Messy format (`messy_rate`, default 1% of rows per file)
    Valid but messy: currency symbols (`$45.00`, `-$1,234.56`), thousands separators, padded
    whitespace, payment-method typos and case (`credit_car`, `bank_tranfer`, ` Credit Card `).
    About 10% of the messy rows are invalid and must be quarantined by the loader: bad date
    (`2024-13-45`, `yesterday`, `2024-02-30`), missing amount, non-numeric amount (`abc`), unknown
    Type (`Refund`). File-level quirks (`file_quirks`, default: when messy_rate > 0; each on one file
    chosen at random, on the others with probability 1/4): header in odd case/spacing, an extra `Notes` column (values with commas,
    quoted), CRLF line ends, no trailing newline. `manifest.json` lists every invalid row (line and
    reason) and the quirks of each file.

Statement formats (`format`: csv, ofx, camt053, mt940, qif; one for all files or per account)
    The same rows can be written as a bank statement instead of the seed CSV, by the writers of
    `lib/formats/writers.py`: `<account>.ofx|.xml|.sta|.qif`, oldest first, one statement per file,
    in USD, with the account the format names (`account_id`: an IBAN in CAMT.053 / MT940, a number
    in OFX, the account name in QIF), a bank transaction id per row where the format has one
    (FITID, AcctSvcrRef, the :61: bank reference; deterministic, unique per statement, so a
    duplicated charge keeps its own), opening/closing balances (checking opens at 25,000.00, the
    others at 0), the vendor as reference where there is a field for it (REFNUM, EndToEndId) and
    the category only in QIF (L). A statement has no messy rows, invalid rows or file quirks (the
    random draws are made anyway, so the other files do not change); its ground truth is keyed by
    the line where each record starts (`<STMTTRN>`, `<Ntry>`, `:61:`, the QIF record's first field).

Line numbers are physical 1-based lines (header = 1); no field contains a newline, so the record
on line L is data row L-1. Files are written to a hidden temporary name and renamed, so a sensor
never sees half a file. Determinism: one `np.random.default_rng(seed)` stream consumed in a fixed
order and no wall-clock input except the `end_date` default; the same arguments (including
end_date) give byte-identical files. Speed: columns are numpy arrays; strings are built per
descriptor template and written in chunks (1M rows in a few seconds, see docs/benchmarks.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from titans_assets.lib.formats import writers

HEADER = ("Date", "Type", "Description", "Amount", "Category", "Payment Method", "Status", "Reference",
          "Receipt URL")
MESSY_HEADER = (" date", " TYPE ", "Description ", "AMOUNT", " Category", "payment method", "Status ",
                " reference", "Receipt Url")
EXTRA_COLUMN = "Notes"

CATEGORIES = (
    "software", "fuel", "meals_entertainment", "telephone", "travel", "office_supplies", "supplies",
    "computer_equipment", "training", "entertainment", "other", "maintenance", "repairs",
    "professional_fees", "vehicle_expenses", "home_office", "food", "rent", "vehicle", "hardware",
    "furniture", "bad_debts",
)
_CAT = {c: i for i, c in enumerate(CATEGORIES)}
PAYMENT_METHODS = ("credit_card", "debit_card", "bank_transfer", "ach", "check", "cash", "paypal")
_PM = {p: i for i, p in enumerate(PAYMENT_METHODS)}
STATUSES = ("paid", "received", "pending", "written_off")
ANOMALY_TYPES = ("amount_spike", "duplicate_charge", "atypical_merchant", "unusual_day",
                 "small_charge_burst", "new_merchant_large")
_ANOMALY_WEIGHTS = (0.25, 0.2, 0.15, 0.15, 0.1, 0.15)
INVALID_REASONS = ("bad_date", "missing_amount", "non_numeric_amount", "bad_type")
MESSY_KINDS = ("currency_symbol", "thousands_separator", "whitespace", "payment_method_typo")
INVALID_SHARE = 0.10  # of messy rows

ACCOUNTS = {
    "business_checking": ("checking",),
    "business_credit_card": ("biz_card",),
    "personal_card": ("personal",),
    "ledger": ("checking", "biz_card", "personal"),
    "business_savings": (),  # transfers only (see _transfer_plan): never in the default set
}
DEFAULT_ACCOUNTS = ("business_checking", "business_credit_card", "personal_card")
_GROUPS = ("checking", "biz_card", "personal")
_GROUP_PM = {"checking": "debit_card", "biz_card": "credit_card", "personal": "debit_card"}

_CHUNK = 200_000
_MIN_DAYS = 31
_MAX_YEARS = 30.0

# Near-duplicate categories used by label noise.
_NEAR = {
    "food": ("meals_entertainment",), "meals_entertainment": ("food", "entertainment"),
    "entertainment": ("meals_entertainment",), "vehicle": ("vehicle_expenses",),
    "vehicle_expenses": ("vehicle", "fuel"), "fuel": ("vehicle_expenses",),
    "office_supplies": ("supplies",), "supplies": ("office_supplies",),
    "hardware": ("computer_equipment",), "computer_equipment": ("hardware",),
    "maintenance": ("repairs",), "repairs": ("maintenance",), "software": ("computer_equipment", "training"),
    "telephone": ("software",), "travel": ("vehicle_expenses",), "training": ("professional_fees",),
    "professional_fees": ("other",), "other": ("supplies",), "home_office": ("office_supplies", "furniture"),
    "furniture": ("home_office",), "rent": ("home_office",), "bad_debts": ("other",),
}

# Heavy tails: (share of rows with a Pareto multiplier, alpha).
_TAILS = {
    "computer_equipment": (0.10, 1.5), "rent": (0.15, 1.2), "furniture": (0.08, 1.6),
    "travel": (0.05, 1.8), "professional_fees": (0.06, 1.7), "repairs": (0.06, 1.8),
    "hardware": (0.05, 1.8), "training": (0.04, 2.0),
}

_LOCAL = ("OAKLAND CA", "SAN FRANCISCO CA", "BERKELEY CA", "EMERYVILLE CA", "ALAMEDA CA", "SAN LEANDRO CA")
_TRAVEL = ("NEW YORK NY", "CHICAGO IL", "AUSTIN TX", "SEATTLE WA", "DENVER CO", "LOS ANGELES CA", "BOSTON MA")

# ---------------------------------------------------------------------------------------------------
# Merchants: key -> (Reference name, templates [(pattern, weight[, payment method])], options)
# Placeholders: {store} {city} {mmdd} {ref4} {ref6} {ref8} {num4} {num6}
# ---------------------------------------------------------------------------------------------------
_CHECK = ("CHECK {num4}", 1, "check")

_MERCHANTS: dict[str, tuple] = {
    "amazon": ("Amazon", [("AMZN MKTP US*{ref6}", 5), ("AMAZON.COM*{ref6} AMZN.COM/BILL WA", 3),
                          ("Amazon.com", 2), ("AMAZON MKTPL*{ref6}", 2), ("AMZN Mktp US", 1)], {}),
    "costco": ("Costco", [("COSTCO WHSE #{store}", 5), ("COSTCO WHOLESALE {store} {city}", 2),
                          ("Costco", 1)], {"stores": 3}),
    "walmart": ("Walmart", [("WAL-MART #{store}", 3), ("WM SUPERCENTER #{store}", 3), ("WALMART.COM {ref6}", 1),
                            ("Walmart", 1)], {"stores": 3}),
    "target": ("Target", [("TARGET {store} {city}", 4), ("TARGET.COM *{ref6}", 1), ("Target", 1)],
               {"stores": 3, "digits": 8}),
    "home_depot": ("The Home Depot", [("THE HOME DEPOT #{store}", 4), ("HOME DEPOT {store} {city}", 2),
                                      ("HOMEDEPOT.COM {ref6}", 1)], {"stores": 2}),
    "best_buy": ("Best Buy", [("BEST BUY {store}", 3), ("BESTBUY.COM {ref8}", 2),
                              ("BEST BUY #{store} {city}", 2)], {"stores": 2}),
    "starbucks": ("Starbucks", [("STARBUCKS STORE {store}", 4), ("STARBUCKS {store} {city}", 2),
                                ("Starbucks", 1)], {"stores": 4, "digits": 5}),
    "blue_bottle": ("Blue Bottle Coffee", [("SQ *BLUE BOTTLE COFFEE {store} {city}", 4),
                                           ("SQ *BLUE BOTTLE COFF", 2), ("BLUE BOTTLE COFFEE", 1)], {"stores": 2}),
    "shell": ("Shell", [("SHELL OIL {store} {city}", 4), ("POS PURCHASE SHELL {store} {mmdd}", 2),
                        ("SHELL SERVICE STATION", 1)], {"stores": 3}),
    "chevron": ("Chevron", [("CHEVRON {store} {city}", 4), ("CHEVRON {store}", 2),
                            ("POS PURCHASE CHEVRON {store} {mmdd}", 1)], {"stores": 3, "digits": 6}),
    "arco": ("ARCO", [("ARCO #{store}", 3), ("ARCO AMPM {store} {city}", 2)], {"stores": 2, "digits": 5}),
    "union76": ("76", [("76 - {store} {city}", 3), ("UNION 76 {store}", 1)], {"stores": 2}),
    "adobe": ("Adobe", [("ADOBE *CREATIVE CLD", 4), ("ADOBE *ADOBE  408-536-6000 CA", 2), ("Adobe Systems", 1),
                        ("ADOBE  *CREATIVE CLOUD 800-833-6687 CA", 1)], {}),
    "microsoft": ("Microsoft", [("MSFT *E0400{num6}", 3), ("MICROSOFT*MICROSOFT 365 B", 2),
                                ("Microsoft 365", 1)], {}),
    "slack": ("Slack", [("SLACK T0{ref6}", 3), ("SLACK TECHNOLOGIES", 2), ("Slack", 1)], {}),
    "github": ("GitHub", [("GITHUB, INC.", 3), ("GITHUB *{ref6}", 1), ("GitHub", 1)], {}),
    "zoom": ("Zoom", [("ZOOM.US 888-799-9666", 3), ("ZOOM.US", 2), ("Zoom Video Communications", 1)], {}),
    "dropbox": ("Dropbox", [("DROPBOX*{ref6}", 3), ("Dropbox", 1)], {}),
    "aws": ("Amazon Web Services", [("AMAZON WEB SERVICES", 2), ("Amazon web services aws.amazon.coWA", 1)], {}),
    "gworkspace": ("Google Workspace", [("GOOGLE *GSUITE_{ref6}", 2), ("GOOGLE*WORKSPACE", 1)], {}),
    "notion": ("Notion", [("NOTION LABS, INC.", 2), ("NOTION.SO", 1)], {}),
    "jetbrains": ("JetBrains", [("JETBRAINS S.R.O.", 1), ("JETBRAINS AMERICAS", 1)], {}),
    "gcloud": ("Google Cloud", [("GOOGLE *CLOUD {ref6}", 3), ("GOOGLE*CLOUD", 1)], {}),
    "namecheap": ("Namecheap", [("PAYPAL *NAMECHEAP", 2, "paypal"), ("NAMECHEAP.COM", 1)], {}),
    "apple": ("Apple", [("APPLE.COM/BILL 866-712-7753 CA", 3), ("APPLE.COM/BILL", 2), ("Apple Services", 1)], {}),
    "apple_store": ("Apple Store", [("APPLE STORE #R{store} {city}", 3), ("APPLE ONLINE STORE", 2),
                                    ("Apple Store", 1)], {"stores": 2, "digits": 3}),
    "bh": ("B&H Photo", [("B&H PHOTO 800-606-6969", 2), ("BH PHOTO VIDEO", 1)], {}),
    "dell": ("Dell", [("DELL SALES & SERVICE", 2), ("DELL MARKETING L.P.", 1)], {}),
    "newegg": ("Newegg", [("NEWEGG INC", 2), ("NEWEGG MARKETPLACE {ref6}", 1)], {}),
    "microcenter": ("Micro Center", [("MICRO CENTER #{store} {city}", 2), ("MICRO CENTER", 1)],
                    {"stores": 1, "digits": 3}),
    "staples": ("Staples", [("STAPLES {store}", 3), ("STAPLES DIRECT", 1), ("Staples Inc", 1)],
                {"stores": 2, "digits": 7}),
    "office_depot": ("Office Depot", [("OFFICE DEPOT #{store}", 3), ("OFFICEMAX/OFFICE DEPOT {store}", 2)],
                     {"stores": 2}),
    "uline": ("ULINE", [("ULINE *SHIP SUPPLIES", 2), ("ULINE  800-295-5510 WI", 1)], {"weekday_only": True}),
    "usps": ("USPS", [("USPS PO {store} {city}", 2), ("USPS.COM CLICKNSHIP", 2)], {"stores": 2, "digits": 10}),
    "fedex": ("FedEx", [("FEDEX {ref8}", 2), ("FEDEX OFFIC{store}", 1)], {"stores": 1}),
    "paypal": ("PayPal", [("PAYPAL *{ref6}", 2, "paypal"), ("PAYPAL INST XFER", 1, "paypal")], {}),
    "united": ("United Airlines", [("UNITED 0162{num6}", 3), ("UNITED AIRLINES", 1)], {}),
    "delta": ("Delta Air Lines", [("DELTA AIR 006{num6}", 3), ("DELTA AIR LINES ATLANTA", 1)], {}),
    "southwest": ("Southwest Airlines", [("SOUTHWES 526{num6}", 2), ("SOUTHWEST AIRLINES", 1)], {}),
    "marriott": ("Marriott", [("MARRIOTT {city}", 2), ("COURTYARD BY MARRIOTT {city}", 2), ("Marriott Hotels", 1)],
                 {"stores": 4, "cities": _TRAVEL}),
    "hilton": ("Hilton", [("HILTON GARDEN INN {city}", 2), ("HAMPTON INN {city}", 1)],
               {"stores": 4, "cities": _TRAVEL}),
    "airbnb": ("Airbnb", [("AIRBNB * HM{ref8}", 3), ("AIRBNB HMAB{ref6}", 1)], {}),
    "uber": ("Uber", [("UBER *TRIP", 3), ("UBER *TRIP HELP.UBER.COM", 2), ("Uber Trip", 1), ("UBER   *TRIP {ref6}", 1)],
             {}),
    "lyft": ("Lyft", [("LYFT   *RIDE {ref6}", 2), ("LYFT *RIDE", 2)], {}),
    "hertz": ("Hertz", [("HERTZ RENT-A-CAR {city}", 2), ("HERTZ #{store}", 1)], {"stores": 3, "cities": _TRAVEL}),
    "chipotle": ("Chipotle", [("CHIPOTLE {store}", 3), ("CHIPOTLE ONLINE", 1)], {"stores": 2}),
    "doordash": ("DoorDash", [("DD *DOORDASH {ref6}", 3), ("DoorDash", 1)], {}),
    "ubereats": ("Uber Eats", [("UBER *EATS", 3), ("UBER EATS {ref6}", 1)], {}),
    "nopa": ("Nopa", [("TST* NOPA", 2), ("TST* NOPA SAN FRANCISCO", 2)], {}),
    "cheesecake": ("The Cheesecake Factory", [("CHEESECAKE {store}", 2), ("THE CHEESECAKE FACTORY {city}", 1)],
                   {"stores": 1}),
    "tacos": ("Tacos El Gordo", [("SQ *TACOS EL GORDO", 2), ("SQ *TACOS EL GORDO {city}", 1)], {"stores": 1}),
    "safeway": ("Safeway", [("SAFEWAY #{store}", 4), ("SAFEWAY {store} {city}", 1), ("Safeway", 1)], {"stores": 2}),
    "trader_joes": ("Trader Joe's", [("TRADER JOE S #{store}", 4), ("TRADER JOE'S #{store} {city}", 1)],
                    {"stores": 2, "digits": 3}),
    "whole_foods": ("Whole Foods", [("WHOLEFDS OAK {store}", 3), ("WHOLE FOODS MARKET", 1)],
                    {"stores": 2, "digits": 5}),
    "instacart": ("Instacart", [("INSTACART*{ref6}", 2), ("Instacart", 1)], {}),
    "netflix": ("Netflix", [("NETFLIX.COM", 3), ("Netflix", 1), ("NETFLIX.COM 866-579-7172 CA", 1)], {}),
    "spotify": ("Spotify", [("SPOTIFY USA", 2), ("Spotify P{ref8}", 1)], {}),
    "disney": ("Disney+", [("DISNEY PLUS", 2), ("DISNEYPLUS 888-905-7888", 1)], {}),
    "amc": ("AMC Theatres", [("AMC THEATRES {city}", 2), ("AMC {store} ONLINE", 1)], {"stores": 2}),
    "ticketmaster": ("Ticketmaster", [("TICKETMASTER", 2), ("TM *TICKETMASTER {ref6}", 1)], {}),
    "steam": ("Steam", [("STEAMGAMES.COM 4259522985", 2), ("STEAM PURCHASE", 1)], {}),
    "gym": ("24 Hour Fitness", [("24 HOUR FITNESS USA", 2), ("24HOURFITNESS {num6}", 1)], {}),
    "parkmobile": ("ParkMobile", [("PARKMOBILE", 2), ("PMUSA PARKMOBILE", 1)], {}),
    "sp_parking": ("SP+ Parking", [("SP+ PARKING {store}", 2), ("SP PLUS {city}", 1)], {"stores": 3}),
    "fastrak": ("FasTrak", [("FASTRAK CSC", 2), ("BATA FASTRAK {num6}", 1)], {}),
    "jiffy": ("Jiffy Lube", [("JIFFY LUBE #{store}", 2)], {"stores": 1}),
    "car_wash": ("Classic Car Wash", [("CLASSIC CAR WASH {city}", 1)], {"stores": 1}),
    "ikea": ("IKEA", [("IKEA EAST PALO ALTO", 2), ("IKEA.COM {num6}", 2)], {}),
    "wayfair": ("Wayfair", [("WAYFAIR*{ref6}", 2), ("Wayfair", 1)], {}),
    "herman_miller": ("Herman Miller", [("HERMAN MILLER STORE", 2), ("HERMANMILLER.COM", 1)], {}),
    "udemy": ("Udemy", [("UDEMY", 2), ("UDEMY.COM {ref6}", 1)], {}),
    "coursera": ("Coursera", [("COURSERA.ORG", 2), ("Coursera", 1)], {}),
    "oreilly": ("O'Reilly Media", [("O'REILLY MEDIA", 1), ("OREILLY *LEARNING", 1)], {}),
    "eventbrite": ("Eventbrite", [("EB *DEVCONF {num4}", 1), ("EVENTBRITE {ref6}", 2)], {}),
    "upwork": ("Upwork", [("UPWORK -{num6}REF", 2), ("Upwork Global", 1)], {}),
    "bank_fee": ("First Bay Bank", [("MONTHLY SERVICE FEE", 3), ("SERVICE CHARGE", 1)], {"weekday_only": True}),
    "wire_fee": ("First Bay Bank", [("WIRE TRANSFER FEE", 2), ("OUTGOING WIRE FEE", 1)], {"weekday_only": True}),
    "atm": ("Cash withdrawal", [("ATM WITHDRAWAL {store} {city}", 2, "cash"), ("NON-BANK ATM {city}", 1, "cash")],
            {"stores": 3}),
    "pge": ("PG&E", [("PGANDE WEB ONLINE", 2), ("PG&E/EZ-PAY {num6}", 2), ("PACIFIC GAS & ELECTRIC", 1)],
            {"weekday_only": True}),
    "verizon": ("Verizon Wireless", [("VZWRLSS*APOCC VISN", 2), ("VERIZON WIRELESS PAYMENTS", 2),
                                     ("VZ WIRELESS VE {num6}", 1)], {"weekday_only": True}),
    "comcast": ("Comcast Business", [("COMCAST BUSINESS 800-391-3000", 2), ("COMCAST CABLE COMM", 1)],
                {"weekday_only": True}),
    "ringcentral": ("RingCentral", [("RINGCENTRAL INC", 2), ("RINGCENTRAL {num6}", 1)], {}),
    "att": ("AT&T", [("AT&T*BILL PAYMENT", 2), ("ATT*BILL PAYMENT {num6}", 1)], {"weekday_only": True}),
    "landlord": ("Oakwood Properties LLC", [("ONLINE TRANSFER TO OAKWOOD PROPERTIES REF #IB{ref8}", 3, "bank_transfer"),
                                            _CHECK, ("OAKWOOD PROPERTIES RENT", 1, "ach")], {"weekday_only": True}),
    "storage": ("Public Storage", [("PUBLIC STORAGE {store}", 2), ("PUBLIC STORAGE", 1)], {"stores": 1, "digits": 5}),
    "wework": ("WeWork", [("WEWORK {ref6}", 2), ("WeWork Day Pass", 1)], {}),
    "peerspace": ("Peerspace", [("PEERSPACE *{ref6}", 1)], {}),
    "sunbelt": ("Sunbelt Rentals", [("SUNBELT RENTALS #{store}", 1)], {"stores": 1, "weekday_only": True}),
    "rivera": ("J. Rivera (contractor)", [("ONLINE TRANSFER TO RIVERA J CONTRACTOR REF #IB{ref8}", 2, "bank_transfer"),
                                          ("GUSTO DES:NET PMTS ID:{ref6} INDN:RIVERA J", 2, "ach")],
               {"weekday_only": True}),
    "chen": ("M. Chen (contractor)", [("ONLINE TRANSFER TO CHEN M REF #IB{ref8}", 2, "bank_transfer"),
                                      ("GUSTO DES:NET PMTS ID:{ref6} INDN:CHEN M", 2, "ach")], {"weekday_only": True}),
    "cpa": ("Smith & Co CPA", [("SMITH & CO CPA", 2, "ach"), _CHECK], {"weekday_only": True}),
    "lawyer": ("Hale Law Group", [("HALE LAW GROUP LLP", 1, "ach"), _CHECK], {"weekday_only": True}),
    "legalzoom": ("LegalZoom", [("LEGALZOOM*{ref6}", 1)], {}),
    "cleaning": ("Sparkle Cleaning Co", [("SPARKLE CLEANING CO", 2, "ach"), _CHECK], {"weekday_only": True}),
    "orkin": ("Orkin", [("ORKIN #{store}", 1, "ach")], {"stores": 1, "weekday_only": True}),
    "hvac": ("Bay Air HVAC", [("BAY AIR HVAC INC", 1, "ach"), _CHECK], {"weekday_only": True}),
    "handyman": ("Mr. Handyman", [("MR HANDYMAN OF OAKLAND", 1, "ach"), _CHECK], {"weekday_only": True}),
    "ace": ("Ace Hardware", [("ACE HDWE {store}", 2), ("ACE HARDWARE {city}", 1)], {"stores": 2, "digits": 5}),
    "ifixit": ("iFixit", [("IFIXIT", 1), ("IFIXIT.COM {ref6}", 1)], {}),
    "toyota_fin": ("Toyota Financial Services", [("TOYOTA ACH LEASE {num6}", 1, "ach"), ("TFS PAYMENT {num6}", 1, "ach")],
                   {"weekday_only": True}),
    "toyota_svc": ("Toyota of Oakland", [("TOYOTA OF OAKLAND SVC", 2), ("TOYOTA OAKLAND {num4}", 1)],
                   {"weekday_only": True}),
    "geico": ("GEICO", [("GEICO *AUTO", 2), ("GEICO  800-841-3000 DC", 1)], {}),
    "dmv": ("CA DMV", [("CA DMV FEE {num6}", 1), ("DMV RENEWAL", 1)], {"weekday_only": True}),
    # Used only by injected anomalies (burst of small charges): never seen otherwise.
    "burst_paypal": ("Digital Goods (PayPal)", [("PAYPAL *DIGITALGOOD {ref4}", 1, "paypal")], {}),
    "burst_kiosk": ("Parking kiosk", [("SQ *PARKING KIOSK {num4}", 1)], {}),
    "burst_google": ("Google", [("GOOGLE *TEMPORARY HOLD", 1)], {}),
    "burst_game": ("Gamestation", [("GAMESTATION*CREDITS {ref6}", 1)], {}),
}

# Clients: key -> (name, ACH descriptor name, template weights ach/check/transfer/stripe/paypal)
_CLIENTS = {
    "acme": ("Acme Corp", "ACME CORP", (6, 1, 2, 0, 0)),
    "northwind": ("Northwind Traders", "NORTHWIND TRADERS", (4, 0, 3, 0, 0)),
    "globex": ("Globex LLC", "GLOBEX LLC", (5, 1, 2, 1, 0)),
    "initech": ("Initech", "INITECH INC", (3, 2, 1, 0, 0)),
    "umbrella": ("Umbrella Health", "UMBRELLA HEALTH", (5, 0, 1, 0, 0)),
    "stark": ("Stark Design Studio", "STARK DESIGN", (0, 2, 1, 3, 1)),
    "wayne": ("Wayne Foods", "WAYNE FOODS CO", (3, 1, 1, 0, 0)),
    "hooli": ("Hooli", "HOOLI", (0, 1, 0, 3, 2)),
    "piedpiper": ("Pied Piper", "PIED PIPER", (0, 1, 1, 2, 2)),
    "soylent": ("Soylent Labs", "SOYLENT LABS", (0, 2, 0, 1, 2)),
}
for _key, (_name, _ach, _w) in _CLIENTS.items():
    _tpl = [(f"ACH CREDIT {_ach} PAYABLES {{num6}}", _w[0], "ach"), ("DEPOSIT - CHECK #{num4}", _w[1], "check"),
            (f"ONLINE TRANSFER FROM {_ach} INV {{num4}}", _w[2], "bank_transfer"),
            ("STRIPE TRANSFER ST-{ref8}", _w[3], "bank_transfer"), ("PAYPAL TRANSFER {ref6}", _w[4], "paypal")]
    _MERCHANTS["client_" + _key] = (_name, [t for t in _tpl if t[1] > 0], {"weekday_only": True})
    _MERCHANTS["baddebt_" + _key] = (_name, [(f"WRITE-OFF INV {{num4}} {_ach}", 2, "bank_transfer"),
                                             (f"Bad debt - {_name} invoice {{num4}}", 1, "bank_transfer")],
                                     {"weekday_only": True})


@dataclass(frozen=True)
class _Entry:
    group: str
    category: str | None  # None = income
    merchant: str
    per_month: float
    median: float
    sigma: float
    profile: str
    pm: str | None = None  # default: the group's
    round_to: int = 0  # whole dollars multiple (0 = cents)


def _entries() -> list[_Entry]:
    E = _Entry
    c, b, p = "checking", "biz_card", "personal"
    rows = [
        # --- business checking: project invoices (income), write-offs, B2B vendors
        E(c, None, "client_globex", 2.5, 3200, 0.55, "weekday_only", "ach"),
        E(c, None, "client_initech", 2.0, 2400, 0.55, "weekday_only", "ach"),
        E(c, None, "client_umbrella", 1.5, 5200, 0.5, "weekday_only", "ach"),
        E(c, None, "client_stark", 1.2, 1500, 0.6, "weekday_only", "ach"),
        E(c, None, "client_wayne", 1.0, 1900, 0.5, "weekday_only", "ach"),
        E(c, None, "client_hooli", 0.8, 7800, 0.6, "weekday_only", "ach"),
        E(c, None, "client_piedpiper", 0.6, 1200, 0.6, "weekday_only", "ach"),
        E(c, None, "client_soylent", 0.4, 900, 0.6, "weekday_only", "ach"),
        E(c, "bad_debts", "baddebt_stark", 0.15, 1500, 0.5, "yearend_weekday", "bank_transfer"),
        E(c, "bad_debts", "baddebt_piedpiper", 0.2, 1200, 0.5, "yearend_weekday", "bank_transfer"),
        E(c, "bad_debts", "baddebt_soylent", 0.2, 900, 0.5, "yearend_weekday", "bank_transfer"),
        E(c, "bad_debts", "baddebt_hooli", 0.1, 2500, 0.6, "yearend_weekday", "bank_transfer"),
        E(c, "bad_debts", "baddebt_wayne", 0.05, 1900, 0.5, "yearend_weekday", "bank_transfer"),
        E(c, "professional_fees", "lawyer", 0.25, 650, 0.6, "weekday_only", "ach"),
        E(c, "professional_fees", "cpa", 0.2, 900, 0.4, "tax", "ach"),
        E(c, "professional_fees", "legalzoom", 0.1, 299, 0.3, "biz"),
        E(c, "maintenance", "orkin", 0.33, 120, 0.15, "weekday_only", "ach"),
        E(c, "maintenance", "hvac", 0.2, 280, 0.5, "weekday_only", "ach"),
        E(c, "maintenance", "home_depot", 0.4, 75, 0.8, "biz"),
        E(c, "repairs", "handyman", 0.35, 320, 0.6, "weekday_only", "ach"),
        E(c, "repairs", "ace", 0.4, 28, 0.7, "biz"),
        E(c, "repairs", "home_depot", 0.3, 90, 0.8, "biz"),
        E(c, "rent", "wework", 0.5, 35, 0.3, "biz"),
        E(c, "rent", "peerspace", 0.15, 420, 0.8, "biz"),
        E(c, "rent", "sunbelt", 0.15, 260, 0.7, "weekday_only"),
        E(c, "vehicle", "toyota_svc", 0.25, 280, 0.6, "weekday_only"),
        E(c, "other", "atm", 0.8, 80, 0.6, "personal", "cash", 20),
        E(c, "other", "wire_fee", 0.2, 25, 0.0, "weekday_only", "bank_transfer"),
        E(c, "other", "usps", 0.5, 18, 0.7, "biz"),
        E(c, "training", "eventbrite", 0.15, 350, 0.7, "biz"),
        E(c, "home_office", "ikea", 0.15, 120, 0.8, "personal"),
        E(c, "telephone", "att", 0.1, 65, 0.4, "weekday_only", "ach"),
        E(c, "furniture", "herman_miller", 0.05, 1100, 0.4, "yearend"),
        # --- business credit card
        E(b, "meals_entertainment", "blue_bottle", 4.0, 6.5, 0.35, "biz"),
        E(b, "meals_entertainment", "starbucks", 2.5, 7.0, 0.4, "biz"),
        E(b, "meals_entertainment", "starbucks", 1.0, 8.0, 0.4, "trip"),
        E(b, "meals_entertainment", "chipotle", 2.0, 14, 0.3, "biz"),
        E(b, "meals_entertainment", "doordash", 2.0, 34, 0.45, "biz"),
        E(b, "meals_entertainment", "ubereats", 1.0, 29, 0.45, "trip"),
        E(b, "meals_entertainment", "nopa", 1.0, 95, 0.55, "biz"),
        E(b, "meals_entertainment", "tacos", 1.0, 18, 0.4, "biz"),
        E(b, "meals_entertainment", "cheesecake", 0.5, 110, 0.5, "biz"),
        E(b, "meals_entertainment", "ticketmaster", 0.15, 150, 0.6, "biz"),
        E(b, "travel", "united", 0.8, 420, 0.45, "booking"),
        E(b, "travel", "delta", 0.6, 380, 0.45, "booking"),
        E(b, "travel", "southwest", 0.6, 210, 0.4, "booking"),
        E(b, "travel", "marriott", 0.7, 240, 0.45, "trip"),
        E(b, "travel", "hilton", 0.5, 230, 0.45, "trip"),
        E(b, "travel", "airbnb", 0.3, 480, 0.6, "booking"),
        E(b, "travel", "uber", 1.5, 26, 0.5, "trip"),
        E(b, "travel", "lyft", 0.6, 24, 0.5, "trip"),
        E(b, "travel", "hertz", 0.3, 190, 0.5, "trip"),
        E(b, "fuel", "shell", 1.5, 52, 0.3, "fuel"),
        E(b, "fuel", "chevron", 1.3, 55, 0.3, "fuel"),
        E(b, "fuel", "arco", 0.7, 45, 0.3, "fuel"),
        E(b, "fuel", "union76", 0.5, 50, 0.3, "fuel"),
        E(b, "fuel", "costco", 0.4, 48, 0.3, "fuel"),
        E(b, "supplies", "costco", 1.2, 140, 0.6, "biz"),
        E(b, "supplies", "walmart", 1.0, 45, 0.6, "biz"),
        E(b, "supplies", "target", 0.7, 38, 0.6, "biz"),
        E(b, "supplies", "home_depot", 0.6, 60, 0.7, "biz"),
        E(b, "supplies", "uline", 0.5, 160, 0.6, "weekday_only"),
        E(b, "office_supplies", "amazon", 2.2, 32, 0.8, "everyday"),
        E(b, "office_supplies", "staples", 1.3, 38, 0.6, "biz"),
        E(b, "office_supplies", "office_depot", 0.9, 45, 0.6, "biz"),
        E(b, "office_supplies", "walmart", 0.3, 25, 0.5, "biz"),
        E(b, "office_supplies", "target", 0.3, 22, 0.5, "biz"),
        E(b, "computer_equipment", "apple_store", 0.3, 1100, 0.6, "yearend"),
        E(b, "computer_equipment", "best_buy", 0.3, 320, 0.9, "yearend"),
        E(b, "computer_equipment", "amazon", 0.35, 190, 0.9, "yearend"),
        E(b, "computer_equipment", "bh", 0.15, 450, 0.8, "yearend"),
        E(b, "computer_equipment", "dell", 0.1, 1200, 0.5, "yearend"),
        E(b, "hardware", "amazon", 0.9, 45, 0.8, "everyday"),
        E(b, "hardware", "best_buy", 0.4, 70, 0.8, "biz"),
        E(b, "hardware", "newegg", 0.3, 85, 0.8, "everyday"),
        E(b, "hardware", "microcenter", 0.2, 110, 0.7, "biz"),
        E(b, "hardware", "home_depot", 0.2, 40, 0.7, "biz"),
        E(b, "software", "amazon", 0.3, 25, 0.7, "everyday"),
        E(b, "software", "apple", 0.6, 10, 0.8, "everyday"),
        E(b, "software", "gcloud", 0.4, 38, 0.9, "everyday"),
        E(b, "software", "namecheap", 0.3, 14, 0.5, "everyday"),
        E(b, "training", "udemy", 0.4, 17, 0.45, "everyday"),
        E(b, "training", "oreilly", 0.15, 49, 0.4, "everyday"),
        E(b, "training", "eventbrite", 0.25, 300, 0.7, "booking"),
        E(b, "vehicle_expenses", "parkmobile", 1.0, 6.5, 0.5, "biz"),
        E(b, "vehicle_expenses", "sp_parking", 0.6, 22, 0.5, "trip"),
        E(b, "vehicle_expenses", "fastrak", 0.6, 7.5, 0.3, "biz"),
        E(b, "vehicle_expenses", "jiffy", 0.2, 85, 0.25, "biz"),
        E(b, "vehicle_expenses", "car_wash", 0.3, 22, 0.2, "fuel"),
        E(b, "vehicle_expenses", "shell", 0.3, 14, 0.3, "fuel"),
        E(b, "furniture", "ikea", 0.3, 160, 0.8, "yearend"),
        E(b, "furniture", "wayfair", 0.25, 230, 0.8, "yearend"),
        E(b, "furniture", "herman_miller", 0.1, 950, 0.4, "yearend"),
        E(b, "furniture", "amazon", 0.1, 120, 0.7, "yearend"),
        E(b, "other", "usps", 0.7, 14, 0.7, "biz"),
        E(b, "other", "fedex", 0.6, 28, 0.7, "biz"),
        E(b, "other", "paypal", 0.4, 35, 0.8, "everyday", "paypal"),
        E(b, "other", "amazon", 0.3, 20, 0.7, "everyday"),
        E(b, "repairs", "ifixit", 0.2, 35, 0.5, "everyday"),
        E(b, "repairs", "home_depot", 0.2, 55, 0.7, "biz"),
        E(b, "professional_fees", "upwork", 0.4, 350, 0.8, "biz"),
        E(b, "home_office", "amazon", 0.15, 45, 0.7, "everyday"),
        E(b, "home_office", "target", 0.15, 35, 0.5, "biz"),
        E(b, "maintenance", "home_depot", 0.2, 45, 0.6, "biz"),
        # --- personal card
        E(p, "food", "safeway", 5.0, 78, 0.55, "personal"),
        E(p, "food", "trader_joes", 4.5, 52, 0.45, "personal"),
        E(p, "food", "whole_foods", 2.5, 68, 0.55, "personal"),
        E(p, "food", "costco", 1.5, 165, 0.5, "personal"),
        E(p, "food", "walmart", 1.2, 58, 0.6, "personal"),
        E(p, "food", "starbucks", 4.0, 6.8, 0.35, "personal"),
        E(p, "food", "instacart", 1.2, 95, 0.5, "personal"),
        E(p, "food", "doordash", 2.0, 36, 0.45, "personal"),
        E(p, "food", "chipotle", 1.5, 13.5, 0.3, "personal"),
        E(p, "food", "target", 0.6, 30, 0.5, "personal"),
        E(p, "food", "nopa", 0.4, 85, 0.5, "personal"),
        E(p, "entertainment", "amc", 0.8, 32, 0.35, "personal"),
        E(p, "entertainment", "ticketmaster", 0.5, 140, 0.6, "personal"),
        E(p, "entertainment", "steam", 0.8, 22, 0.7, "personal"),
        E(p, "entertainment", "apple", 0.8, 8, 0.8, "personal"),
        E(p, "entertainment", "amazon", 0.4, 18, 0.6, "personal"),
        E(p, "fuel", "shell", 1.2, 50, 0.3, "fuel"),
        E(p, "fuel", "chevron", 1.0, 52, 0.3, "fuel"),
        E(p, "fuel", "costco", 0.8, 46, 0.3, "fuel"),
        E(p, "other", "amazon", 1.2, 28, 0.8, "personal"),
        E(p, "other", "target", 0.8, 40, 0.6, "personal"),
        E(p, "other", "walmart", 0.5, 30, 0.6, "personal"),
        E(p, "other", "usps", 0.3, 12, 0.6, "personal"),
        E(p, "other", "paypal", 0.3, 30, 0.8, "personal", "paypal"),
        E(p, "vehicle_expenses", "parkmobile", 0.8, 5.5, 0.5, "personal"),
        E(p, "vehicle_expenses", "fastrak", 0.6, 7.5, 0.3, "personal"),
        E(p, "vehicle_expenses", "car_wash", 0.3, 20, 0.2, "personal"),
        E(p, "vehicle_expenses", "jiffy", 0.3, 80, 0.25, "personal"),
        E(p, "home_office", "ikea", 0.3, 90, 0.8, "personal"),
        E(p, "home_office", "amazon", 0.4, 40, 0.7, "personal"),
        E(p, "home_office", "target", 0.3, 30, 0.6, "personal"),
        E(p, "home_office", "home_depot", 0.2, 45, 0.7, "personal"),
        E(p, "supplies", "costco", 0.6, 90, 0.5, "personal"),
        E(p, "supplies", "walmart", 0.5, 35, 0.5, "personal"),
        E(p, "supplies", "target", 0.4, 25, 0.5, "personal"),
        E(p, "travel", "airbnb", 0.25, 520, 0.6, "vacation"),
        E(p, "travel", "southwest", 0.25, 240, 0.4, "vacation_booking"),
        E(p, "travel", "uber", 0.3, 24, 0.5, "vacation"),
        E(p, "travel", "marriott", 0.2, 260, 0.4, "vacation"),
        E(p, "maintenance", "home_depot", 0.3, 60, 0.7, "personal"),
        E(p, "furniture", "ikea", 0.1, 150, 0.8, "personal"),
        E(p, "furniture", "wayfair", 0.05, 220, 0.8, "personal"),
    ]
    return rows


# Recurring items: (group, category, merchant, kind, params). kind in monthly/biweekly/annual/retainer.
def _recurring_specs() -> list[tuple]:
    c, b, p = "checking", "biz_card", "personal"
    return [
        (c, "rent", "landlord", "monthly", {"day": 1, "amount": 3200.00, "post": "business", "late": 0.12, "raise_": (0.03, 0.05)}),
        (c, "rent", "storage", "monthly", {"day": 6, "amount": 89.00, "post": "exact", "change": (0.7, 0.08, 0.15), "pm": "ach"}),
        (c, "professional_fees", "rivera", "biweekly", {"rate": 55.0, "hours": (76, 6)}),
        (c, "professional_fees", "chen", "biweekly", {"rate": 48.0, "hours": (60, 8)}),
        (c, "professional_fees", "cpa", "monthly", {"day": 20, "amount": 350.00, "post": "business", "change": (0.6, 0.05, 0.1)}),
        (c, "telephone", "verizon", "monthly", {"day": 24, "amount": 96.40, "post": "business", "jitter": 3.0, "overage": 0.1, "pm": "ach"}),
        (c, "telephone", "comcast", "monthly", {"day": 17, "amount": 129.99, "post": "business", "change": (0.7, 0.05, 0.1), "pm": "ach"}),
        (c, "home_office", "pge", "monthly", {"day": 10, "amount": 140.0, "post": "business", "seasonal": 0.35, "noise": 0.08, "pm": "ach"}),
        (c, "vehicle", "toyota_fin", "monthly", {"day": 15, "amount": 389.27, "post": "business"}),
        (c, "vehicle", "geico", "monthly", {"day": 28, "amount": 142.30, "post": "exact", "change": (0.8, 0.04, 0.09), "pm": "ach"}),
        (c, "vehicle", "dmv", "annual", {"amount": 287.0, "post": "business", "pm": "debit_card"}),
        (c, "other", "bank_fee", "monthly", {"day": 31, "amount": 15.00, "post": "business_before", "pm": "bank_transfer"}),
        (c, "maintenance", "cleaning", "monthly", {"day": 5, "amount": 180.00, "post": "business", "change": (0.5, 0.05, 0.1)}),
        (c, None, "client_acme", "retainer", {"amount": 4500.00, "net": 30, "change": (0.6, 0.05, 0.12)}),
        (c, None, "client_northwind", "retainer", {"amount": 2750.00, "net": 15, "change": (0.4, 0.05, 0.1)}),
        (b, "software", "adobe", "monthly", {"day": 14, "amount": 54.99, "change": (0.6, 0.05, 0.2)}),
        (b, "software", "microsoft", "monthly", {"day": 3, "amount": 12.50, "change": (0.5, 0.05, 0.2)}),
        (b, "software", "slack", "monthly", {"day": 22, "amount": 8.75, "change": (0.5, 0.05, 0.2)}),
        (b, "software", "github", "monthly", {"day": 9, "amount": 21.00, "change": (0.5, 0.05, 0.2)}),
        (b, "software", "zoom", "monthly", {"day": 27, "amount": 15.99, "change": (0.5, 0.05, 0.2)}),
        (b, "software", "dropbox", "monthly", {"day": 5, "amount": 11.99, "change": (0.5, 0.05, 0.2)}),
        (b, "software", "gworkspace", "monthly", {"day": 1, "amount": 14.40, "change": (0.6, 0.05, 0.2)}),
        (b, "software", "notion", "monthly", {"day": 18, "amount": 10.00, "change": (0.5, 0.05, 0.2)}),
        (b, "software", "aws", "monthly", {"day": 2, "amount": 85.0, "noise": 0.35}),
        (b, "software", "jetbrains", "annual", {"amount": 249.00, "change": (0.5, 0.05, 0.1)}),
        (b, "telephone", "ringcentral", "monthly", {"day": 11, "amount": 29.99, "change": (0.5, 0.05, 0.15)}),
        (b, "training", "coursera", "monthly", {"day": 20, "amount": 59.00, "change": (0.5, 0.05, 0.15)}),
        (p, "entertainment", "netflix", "monthly", {"day": 8, "amount": 15.49, "change": (0.7, 0.1, 0.2)}),
        (p, "entertainment", "spotify", "monthly", {"day": 26, "amount": 10.99, "change": (0.6, 0.08, 0.12)}),
        (p, "entertainment", "disney", "monthly", {"day": 12, "amount": 7.99, "change": (0.6, 0.1, 0.25)}),
        (p, "other", "gym", "monthly", {"day": 1, "amount": 39.99, "change": (0.3, 0.05, 0.15)}),
        (p, "other", "apple", "monthly", {"day": 19, "amount": 2.99}),
    ]


# ---------------------------------------------------------------------------------------------------
# Public results
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationSummary:
    out_dir: Path
    labels_dir: Path
    start_date: dt.date
    end_date: dt.date
    years: float  # span actually used
    rows: dict[str, int]  # file name -> data rows (header excluded, invalid rows included)
    invalid_rows: dict[str, int]  # file name -> invalid rows written (the loader must quarantine them)
    anomalies: dict[str, int]  # anomaly type -> rows
    label_noise_rows: int
    paths: tuple[Path, ...]  # every file written: data files, then ground truth
    manifest: dict = field(repr=False, compare=False, default_factory=dict)
    transfer_pairs: int = 0  # transfers between the generated accounts (both sides written)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_invalid(self) -> int:
        return sum(self.invalid_rows.values())

    @property
    def total_anomalies(self) -> int:
        return sum(self.anomalies.values())

    def format(self) -> str:
        lines = [(f"Generated {self.total_rows:,} rows from {self.start_date} to {self.end_date} "
                  f"({self.years:.2f} years) in {self.out_dir}")]
        for name, n in self.rows.items():
            lines.append(f"  {name:<28} {n:>10,} rows  {self.invalid_rows[name]:>6,} invalid")
        lines.append(f"  anomalies: {self.total_anomalies:,} ("
                     + ", ".join(f"{k} {v}" for k, v in self.anomalies.items() if v) + ")")
        lines.append(f"  label noise: {self.label_noise_rows:,} rows")
        if self.transfer_pairs:
            lines.append(f"  transfers between the accounts: {self.transfer_pairs:,} pairs (both sides)")
        lines.append(f"Ground truth (not loaded; scores the anomaly model): {self.labels_dir}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------------------------------
def us_holidays(year: int) -> list[dt.date]:
    """US federal holidays (observed dates for the fixed ones)."""

    def nth(month: int, weekday: int, n: int) -> dt.date:
        d = dt.date(year, month, 1)
        d += dt.timedelta((weekday - d.weekday()) % 7)
        return d + dt.timedelta(7 * (n - 1))

    def last(month: int, weekday: int) -> dt.date:
        d = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(1)
        return d - dt.timedelta((d.weekday() - weekday) % 7)

    def observed(d: dt.date) -> dt.date:
        return d - dt.timedelta(1) if d.weekday() == 5 else d + dt.timedelta(1) if d.weekday() == 6 else d

    fixed = [dt.date(year, 1, 1), dt.date(year, 6, 19), dt.date(year, 7, 4), dt.date(year, 11, 11),
             dt.date(year, 12, 25)]
    return sorted([observed(d) for d in fixed] + [nth(1, 0, 3), nth(2, 0, 3), last(5, 0), nth(9, 0, 1),
                                                  nth(10, 0, 2), nth(11, 3, 4)])


class _Calendar:
    def __init__(self, start: dt.date, n_days: int, rng: np.random.Generator):
        self.start, self.n = start, n_days
        self.end = start + dt.timedelta(n_days - 1)
        self.epoch0 = (start - dt.date(1970, 1, 1)).days
        days = np.datetime64(start.isoformat(), "D") + np.arange(n_days)
        months = days.astype("datetime64[M]")
        self.dow = (np.arange(n_days) + self.epoch0 + 3) % 7  # Monday = 0
        self.month = months.astype(np.int64) % 12 + 1
        self.year = months.astype(np.int64) // 12 + 1970
        self.dom = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
        self.dim = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
        self.iso = np.array(days.astype(str).tolist(), dtype=object)
        self.mmdd = np.array([s[5:7] + "/" + s[8:10] for s in self.iso], dtype=object)
        years = range(start.year, self.end.year + 1)
        self.holiday = np.zeros(n_days, dtype=bool)
        for y in years:
            for h in us_holidays(y):
                i = (h - start).days
                if 0 <= i < n_days:
                    self.holiday[i] = True
        self.business = (self.dow < 5) & ~self.holiday
        # Vacations: one in summer (7-12 days), one around New Year (5-8 days).
        self.vacation = np.zeros(n_days, dtype=bool)
        for y in range(start.year - 1, self.end.year + 1):
            s1 = dt.date(y, 6, 15) + dt.timedelta(int(rng.integers(0, 60)))
            l1 = int(rng.integers(7, 13))
            s2 = dt.date(y, 12, 22) + dt.timedelta(int(rng.integers(0, 5)))
            l2 = int(rng.integers(5, 9))
            for s, length in ((s1, l1), (s2, l2)):
                a = (s - start).days
                self.vacation[max(a, 0):max(min(a + length, n_days), 0)] = True
        # Business trips: ~0.9/month, 2-4 days, starting on a working day outside vacations.
        self.trip = np.zeros(n_days, dtype=bool)
        self.booking = np.zeros(n_days, dtype=bool)
        self.vac_booking = np.zeros(n_days, dtype=bool)
        cand = np.flatnonzero(self.business & ~self.vacation)
        n_trips = int(rng.poisson(0.9 * n_days / 30.44))
        if len(cand) and n_trips:
            for s in np.sort(rng.choice(cand, size=min(n_trips, len(cand)), replace=False)):
                self.trip[s:s + int(rng.integers(2, 5))] = True
                self.booking[max(s - 30, 0):max(s - 7, 0)] = True
        for s in np.flatnonzero(self.vacation & ~np.r_[False, self.vacation[:-1]]):
            self.vac_booking[max(s - 60, 0):max(s - 21, 0)] = True
        self._profiles: dict[str, np.ndarray] = {}

    def day_index(self, d: dt.date) -> int:
        return (d - self.start).days

    def profile(self, name: str) -> np.ndarray:
        """Normalised day weights for a spending profile (see the module docstring)."""
        if name not in self._profiles:
            w = self._weights(name)
            if w.sum() <= 0:
                w = np.ones(self.n)
            self._profiles[name] = w / w.sum()
        return self._profiles[name]

    def _weights(self, name: str) -> np.ndarray:
        dow, month, dom, dim = self.dow, self.month, self.dom, self.dim
        christmas = (month == 12) & (dom >= 24) | (month == 1) & (dom <= 1)
        biz = np.choose(np.minimum(dow, 6), [1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.08])
        biz = biz * np.where(self.holiday, 0.1, 1.0) * np.where(christmas, 0.4, 1.0)
        biz = biz * np.where(dom > dim - 3, 1.25, 1.0) * np.where(self.vacation, 0.04, 1.0)
        weekday_only = self.business * np.where(self.vacation, 0.3, 1.0)
        if name == "biz":
            return biz
        if name == "weekday_only":
            return weekday_only.astype(float)
        if name in ("yearend", "yearend_weekday"):
            base = weekday_only.astype(float) if name == "yearend_weekday" else biz
            quarter_end = np.isin(month, (3, 6, 9)) & (dom > dim - 10)
            return base * np.where(month == 12, 1.8, 1.0) * np.where(quarter_end, 1.4, 1.0)
        if name == "tax":
            return weekday_only * np.where(np.isin(month, (2, 3, 4)), 3.0, 1.0)
        if name == "personal":
            w = np.choose(dow, [0.85, 0.8, 0.85, 0.95, 1.15, 1.45, 1.25])
            w = w * np.where(self.holiday, 1.1, 1.0) * np.where(self.vacation, 0.35, 1.0)
            w = w * np.where(month == 12, 1.3, 1.0) * np.where((month == 12) & (dom >= 20) & (dom <= 24), 1.5, 1.0)
            return w * np.where((dom <= 3) | (dom == 15) | (dom == 16), 1.15, 1.0)
        if name == "fuel":
            return np.where(dow < 5, 1.0, 0.75) * np.where(self.vacation, 0.2, 1.0)
        if name == "everyday":
            return np.where(dow < 5, 1.0, 0.7) * np.where(self.vacation, 0.15, 1.0)
        if name == "trip":
            return biz * 0.05 + self.trip * 30.0
        if name == "booking":
            return biz * 0.1 + self.booking * biz * 6.0
        if name == "vacation":
            return self.profile("personal") * self.n * 0.1 + self.vacation * 25.0
        if name == "vacation_booking":
            return self.profile("personal") * self.n * 0.1 + self.vac_booking * 4.0 + self.vacation * 2.0
        raise KeyError(name)

    def next_business(self, i: int) -> int:
        while i < self.n and not self.business[i]:
            i += 1
        return i

    def prev_business(self, i: int) -> int:
        while i >= 0 and not self.business[i]:
            i -= 1
        return i


# ---------------------------------------------------------------------------------------------------
# Catalogue: merchants and templates as flat arrays
# ---------------------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{(store|city|mmdd|ref4|ref6|ref8|num4|num6)\}")


class _Catalog:
    def __init__(self, rng: np.random.Generator):
        self.keys = list(_MERCHANTS)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.names: list[str] = []
        self.weekday_only = np.zeros(len(self.keys), dtype=bool)
        self.stores: list[np.ndarray] = []
        self.cities: list[np.ndarray] = []
        self.tmpl_first = np.zeros(len(self.keys), dtype=np.int32)
        self.tmpl_count = np.zeros(len(self.keys), dtype=np.int32)
        self.tmpl_p: list[np.ndarray] = []
        self.tmpl_parts: list[list[str]] = []  # literal text or placeholder name
        self.is_placeholder: list[list[bool]] = []
        self.tmpl_merchant: list[int] = []
        tmpl_pm: list[int] = []
        for m, key in enumerate(self.keys):
            name, templates, opts = _MERCHANTS[key]
            self.names.append(name)
            self.weekday_only[m] = bool(opts.get("weekday_only"))
            n_stores, digits = max(int(opts.get("stores", 1)), 1), int(opts.get("digits", 4))
            pool = opts.get("cities", _LOCAL)
            nums = rng.integers(10 ** (digits - 1) // 10, 10 ** digits, size=n_stores)
            self.stores.append(np.array([str(x).zfill(digits) for x in nums], dtype=object))
            self.cities.append(np.array([pool[i] for i in rng.choice(len(pool), size=n_stores,
                                                                     replace=n_stores > len(pool))], dtype=object))
            self.tmpl_first[m] = len(self.tmpl_parts)
            self.tmpl_count[m] = len(templates)
            w = np.array([t[1] for t in templates], dtype=float)
            self.tmpl_p.append(w / w.sum())
            for t in templates:
                pieces = _PLACEHOLDER.split(t[0])  # literal, name, literal, name, ..., literal
                parts = [(s, i % 2 == 1) for i, s in enumerate(pieces) if s != "" or i % 2 == 1]
                self.tmpl_parts.append([s for s, _ in parts])
                self.is_placeholder.append([ph for _, ph in parts])
                self.tmpl_merchant.append(m)
                tmpl_pm.append(_PM[t[2]] if len(t) > 2 else -1)
        self.tmpl_pm = np.array(tmpl_pm, dtype=np.int8)
        self.tmpl_has_date = np.array(["mmdd" in parts for parts in self.tmpl_parts], dtype=bool)
        self.tmpl_merchant_arr = np.array(self.tmpl_merchant, dtype=np.int32)

    def pick_templates(self, m: int, k: int, rng: np.random.Generator) -> np.ndarray:
        n = int(self.tmpl_count[m])
        if n == 1:
            return np.full(k, self.tmpl_first[m], dtype=np.int32)
        return (self.tmpl_first[m] + rng.choice(n, size=k, p=self.tmpl_p[m])).astype(np.int32)


# ---------------------------------------------------------------------------------------------------
# Rows as columns
# ---------------------------------------------------------------------------------------------------
_COLS = ("acct", "day", "cents", "cat", "pm", "status", "merch", "tmpl", "token", "disc", "anom", "override", "xfer")
_DTYPES = {"acct": np.int16, "day": np.int32, "cents": np.int64, "cat": np.int16, "pm": np.int8, "status": np.int8,
               "merch": np.int32, "tmpl": np.int32, "token": np.uint64, "disc": bool, "anom": np.int8, "override": np.int32,
               "xfer": np.int32}


def _empty() -> dict[str, np.ndarray]:
    return {c: np.empty(0, dtype=_DTYPES[c]) for c in _COLS}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(p["day"])]
    if not parts:
        return _empty()
    return {c: np.concatenate([p[c] for p in parts]).astype(_DTYPES[c], copy=False) for c in _COLS}


def _take(core: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {c: v[idx] for c, v in core.items()}


def _tokens(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, size=k, dtype=np.uint64, endpoint=True)


def _block(acct, day, cents, cat, pm, status, merch, tmpl, token, disc) -> dict[str, np.ndarray]:
    k = len(day)
    return {
        "acct": np.broadcast_to(np.asarray(acct, dtype=np.int16), (k,)).copy(),
        "day": np.asarray(day, dtype=np.int32), "cents": np.asarray(cents, dtype=np.int64),
        "cat": np.broadcast_to(np.asarray(cat, dtype=np.int16), (k,)).copy(),
        "pm": np.asarray(pm, dtype=np.int8), "status": np.broadcast_to(np.asarray(status, dtype=np.int8), (k,)).copy(),
        "merch": np.broadcast_to(np.asarray(merch, dtype=np.int32), (k,)).copy(),
        "tmpl": np.asarray(tmpl, dtype=np.int32), "token": np.asarray(token, dtype=np.uint64),
        "disc": np.full(k, disc, dtype=bool), "anom": np.zeros(k, dtype=np.int8), "override": np.full(k, -1, dtype=np.int32),
        "xfer": np.full(k, -1, dtype=np.int32),
    }


def _to_cents(amount: np.ndarray, round_to: int = 0) -> np.ndarray:
    if round_to:
        return (np.maximum(np.round(amount / round_to), 1) * round_to * 100).astype(np.int64)
    return np.maximum(np.round(amount * 100), 1).astype(np.int64)


def _pm_for(cat: _Catalog, tmpl: np.ndarray, default: int) -> np.ndarray:
    pm = cat.tmpl_pm[tmpl].astype(np.int8)
    pm[pm < 0] = default
    return pm


# ---------------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------------
def _recurring(cal: _Calendar, catalog: _Catalog, acct_groups: list[tuple[int, str]],
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fixed-schedule items (rent, payroll, bills, subscriptions, retainer income) for each account."""
    blocks = []
    month_starts = [(y, m) for y in range(cal.start.year - 1, cal.end.year + 1) for m in range(1, 13)]
    for acct, group in acct_groups:
        for g, category, mkey, kind, prm in _recurring_specs():
            if g != group:
                continue
            m = catalog.index[mkey]
            days: list[int] = []
            amounts: list[float] = []
            base = prm.get("amount", 0.0)
            change = prm.get("change")
            change_at = None
            if change and rng.random() < change[0]:
                change_at = int(rng.integers(1, max(cal.n, 2)))
            new_price = _bump(base, rng.uniform(change[1], change[2])) if change else base
            raise_month = int(rng.integers(1, 13))
            anchor_day = int(rng.integers(1, 29))
            lease_bump = rng.uniform(*prm["raise_"]) if "raise_" in prm else 0.0
            if kind in ("monthly", "retainer"):
                for y, mo in month_starts:
                    dim = (dt.date(y + (mo == 12), mo % 12 + 1, 1) - dt.timedelta(1)).day
                    day = min(prm.get("day", 1), dim)
                    i = cal.day_index(dt.date(y, mo, day))
                    price = base
                    if change_at is not None and i >= change_at:
                        price = new_price
                    if lease_bump:
                        price = round(base * (1 + lease_bump) ** ((y - cal.start.year) + (mo >= raise_month) - 1), 2)
                        price = max(price, base)
                    if kind == "retainer":
                        i += prm["net"] + _lateness(rng)
                        i = cal.next_business(i) if 0 <= i < cal.n else i
                    else:
                        post = prm.get("post", "exact")
                        if prm.get("late") and rng.random() < prm["late"]:
                            i += int(rng.integers(1, 7))
                        if post == "business":
                            i = cal.next_business(i) if 0 <= i < cal.n else i
                        elif post == "business_before":
                            i = cal.prev_business(i) if 0 <= i < cal.n else i
                    amount = price
                    if "jitter" in prm:
                        amount += rng.normal(0, prm["jitter"]) + (rng.uniform(20, 60) if rng.random() < prm["overage"] else 0)
                    if "seasonal" in prm:
                        amount *= 1 + prm["seasonal"] * math.cos(2 * math.pi * (mo - 1) / 12)
                    if "noise" in prm:
                        amount *= math.exp(rng.normal(0, prm["noise"]))
                    if 0 <= i < cal.n:
                        days.append(i)
                        amounts.append(amount)
            elif kind == "biweekly":
                first = (4 - int(cal.dow[0])) % 7 + (7 if rng.random() < 0.5 else 0)
                for i in range(first, cal.n, 14):
                    j = i
                    while j >= 0 and not cal.business[j]:
                        j -= 1  # holiday Friday: paid the day before
                    hours = max(round(rng.normal(*prm["hours"]) * 2) / 2, 8)
                    if j >= 0:
                        days.append(j)
                        amounts.append(prm["rate"] * hours)
            elif kind == "annual":
                for y in range(cal.start.year, cal.end.year + 1):
                    d = dt.date(y, raise_month, anchor_day)
                    i = cal.day_index(d)
                    if prm.get("post") == "business" and 0 <= i < cal.n:
                        i = cal.next_business(i)
                    price = new_price if change_at is not None and i >= change_at else base
                    if 0 <= i < cal.n:
                        days.append(i)
                        amounts.append(price)
            k = len(days)
            if not k:
                continue
            # One descriptor most of the time (a given bank writes a given biller one way), sometimes another.
            main = int(catalog.pick_templates(m, 1, rng)[0])
            tmpl = np.where(rng.random(k) < 0.85, main, catalog.pick_templates(m, k, rng)).astype(np.int32)
            default_pm = _PM[prm.get("pm", _GROUP_PM[group] if category else "ach")]
            if group == "checking" and "pm" not in prm and category:
                default_pm = _PM["ach"]
            cents = _to_cents(np.array(amounts))
            is_income = category is None
            blocks.append(_block(acct, np.array(days), cents if is_income else -cents,
                                 -1 if is_income else _CAT[category], _pm_for(catalog, tmpl, default_pm),
                                 1 if is_income else 0, m, tmpl, _tokens(rng, k), False))
    return _concat(blocks)


def _bump(price: float, pct: float) -> float:
    """A price increase that lands on a price point (x.99 for prices that end in .99)."""
    new = price * (1 + pct)
    if abs(price * 100 % 100 - 99) < 0.5:
        return math.floor(new) + 0.99
    return round(new, 2)


def _lateness(rng: np.random.Generator) -> int:
    u = rng.random()
    if u < 0.65:
        return int(rng.integers(-4, 4))
    if u < 0.90:
        return round(rng.lognormal(math.log(9), 0.5))
    return int(rng.integers(25, 51))


def _discretionary(cal: _Calendar, catalog: _Catalog, acct_groups: list[tuple[int, str]], total: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`total` rows spread over all (account, entry) pairs in proportion to their base rates."""
    entries = [(a, e) for a, g in acct_groups for e in _ENTRY_LIST if e.group == g]
    if not entries or total <= 0:
        return _empty()
    rates = np.array([e.per_month for _, e in entries])
    counts = rng.multinomial(total, rates / rates.sum())
    blocks = []
    for (acct, e), k in zip(entries, counts):
        if not k:
            continue
        m = catalog.index[e.merchant]
        day = rng.choice(cal.n, size=k, p=cal.profile(e.profile))
        amount = e.median * np.exp(e.sigma * rng.standard_normal(k)) if e.sigma else np.full(k, e.median)
        tail = _TAILS.get(e.category or "")
        if tail:
            hit = rng.random(k) < tail[0]
            amount[hit] *= 1 + np.minimum(rng.pareto(tail[1], hit.sum()), 30)
        cents = _to_cents(amount, e.round_to)
        tmpl = catalog.pick_templates(m, k, rng)
        pm = _pm_for(catalog, tmpl, _PM[e.pm or _GROUP_PM[e.group]])
        income = e.category is None
        status = 1 if income else (3 if e.category == "bad_debts" else 0)
        blocks.append(_block(acct, day, cents if income else -cents, -1 if income else _CAT[e.category], pm,
                             status, m, tmpl, _tokens(rng, k), True))
    return _concat(blocks)


_ENTRY_LIST = _entries()


def _base_rows_per_year(groups: Sequence[str]) -> float:
    disc = sum(e.per_month for g in groups for e in _ENTRY_LIST if e.group == g) * 12
    per_kind = {"monthly": 12, "retainer": 12, "biweekly": 26, "annual": 1}
    rec = sum(per_kind[s[3]] for g in groups for s in _recurring_specs() if s[0] == g)
    return disc + rec


# ---------------------------------------------------------------------------------------------------
# Anomalies
# ---------------------------------------------------------------------------------------------------
_NEW_PREFIX = ("NOVA", "APEX", "ZENITH", "ORBIT", "KESTREL", "VANTA", "HALCYON", "QUARTZ", "SABLE", "CINDER",
               "TALLOW", "MERIDIAN", "OBSIDIAN", "LUMEN", "BRISTLE", "FATHOM")
_NEW_SUFFIX = ("TRADING", "ELECTRONICS", "CONSULTING", "IMPORTS", "SUPPLY CO", "DIGITAL LLC", "HOLDINGS",
               "SOLUTIONS", "GLOBAL", "OUTLET")
_NEW_CATEGORIES = ("computer_equipment", "other", "professional_fees", "furniture", "travel")
_BURST_MERCHANTS = ("burst_paypal", "burst_kiosk", "burst_google", "burst_game")


def _plan_anomalies(n_rows: int, rate: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """[(type index, rows)] adding up to exactly round(rate * n_rows) rows.

    When the budget allows (7 rows: a burst needs 2), every type is planned once first."""
    target = round(rate * n_rows)
    if target <= 0:
        return []
    burst = ANOMALY_TYPES.index("small_charge_burst")
    plan: list[tuple[int, int]] = []
    if target >= len(ANOMALY_TYPES) + 1:
        plan = [(int(t), 2 if t == burst else 1) for t in rng.permutation(len(ANOMALY_TYPES))]
    used = sum(s for _, s in plan)
    types = rng.choice(len(ANOMALY_TYPES), size=target, p=_ANOMALY_WEIGHTS)
    sizes = np.where(types == burst, rng.integers(2, 9, size=target), 1)
    for t, s in zip(types.tolist(), sizes.tolist()):
        s = min(s, target - used)
        if s <= 0:
            break
        if t == burst and s < 2:
            t = ANOMALY_TYPES.index("amount_spike")
        plan.append((t, s))
        used += s
    return plan


def _added_rows(plan: list[tuple[int, int]]) -> int:
    added = {"duplicate_charge", "small_charge_burst", "new_merchant_large"}
    return sum(s for t, s in plan if ANOMALY_TYPES[t] in added)


def _apply_anomalies(core, plan, cal: _Calendar, catalog: _Catalog, acct_groups, rng, overrides):
    """Mutate or add rows for each planned anomaly; fall back to a new large merchant when no row fits."""
    T = {name: i for i, name in enumerate(ANOMALY_TYPES)}
    n = len(core["day"])
    disc_exp = np.flatnonzero(core["disc"] & (core["cat"] >= 0) & (core["cat"] != _CAT["bad_debts"]))
    taken = np.zeros(n, dtype=bool)
    medians = _entry_medians()
    weekend_days = np.flatnonzero(~cal.business)
    new_rows = []
    fallback = 0

    def draw(pool: np.ndarray, k: int) -> np.ndarray:
        pool = pool[~taken[pool]]
        if len(pool) == 0 or k == 0:
            return pool[:0]
        pick = rng.choice(pool, size=min(k, len(pool)), replace=False)
        taken[pick] = True
        return pick

    need = {t: sum(s for tt, s in plan if tt == t) for t in range(len(ANOMALY_TYPES))}
    # unusual_day: weekday-only merchants (seen at least 5 times in the account) moved to a weekend / holiday.
    key = core["acct"].astype(np.int64) * len(catalog.keys) + core["merch"]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    regular = counts[inverse] >= 5
    wk_pool = disc_exp[catalog.weekday_only[core["merch"][disc_exp]] & regular[disc_exp]]
    rows = draw(wk_pool, need[T["unusual_day"]]) if len(weekend_days) else wk_pool[:0]
    fallback += need[T["unusual_day"]] - len(rows)
    for r in rows:
        near = weekend_days[np.abs(weekend_days - core["day"][r]) <= 10]
        core["day"][r] = int(rng.choice(near if len(near) else weekend_days))
        core["anom"][r] = T["unusual_day"] + 1
    # amount_spike: 8-20x the merchant's median (the largest over its categories).
    rows = draw(disc_exp, need[T["amount_spike"]])
    fallback += need[T["amount_spike"]] - len(rows)
    for r in rows:
        med = medians.get(int(core["merch"][r]), abs(int(core["cents"][r])) / 100)
        core["cents"][r] = -round(med * rng.uniform(8, 20) * 100)
        core["anom"][r] = T["amount_spike"] + 1
    # atypical_merchant: a merchant from an unrelated category, the row keeps its category.
    rows = draw(disc_exp, need[T["atypical_merchant"]])
    fallback += need[T["atypical_merchant"]] - len(rows)
    for r in rows:
        c = CATEGORIES[int(core["cat"][r])]
        own = {e.merchant for e in _ENTRY_LIST if e.category == c}
        related = {c, *_NEAR.get(c, ())}
        options = [e for e in _ENTRY_LIST if e.category and e.category not in related and e.merchant not in own
                   and e.category != "bad_debts" and not catalog.weekday_only[catalog.index[e.merchant]]]
        e = options[int(rng.integers(len(options)))]
        m = catalog.index[e.merchant]
        core["merch"][r] = m
        core["tmpl"][r] = catalog.pick_templates(m, 1, rng)[0]
        core["cents"][r] = -int(_to_cents(np.array([e.median * math.exp(e.sigma * rng.standard_normal())]))[0])
        core["anom"][r] = T["atypical_merchant"] + 1
    # duplicate_charge: the same purchase again (same text and amount), same or next day.
    rows = draw(disc_exp, need[T["duplicate_charge"]])
    fallback += need[T["duplicate_charge"]] - len(rows)
    if len(rows):
        dup = _take(core, rows)
        # Posted the next day 30% of the time, unless the descriptor shows the transaction date.
        shift = (rng.random(len(rows)) < 0.3) & (dup["day"] + 1 < cal.n) & ~catalog.tmpl_has_date[dup["tmpl"]]
        dup["day"] = dup["day"] + shift
        dup["anom"][:] = T["duplicate_charge"] + 1
        dup["status"][:] = 0
        new_rows.append(dup)
        core["anom"][rows] = -1  # the original: not an anomaly, but kept valid and unchanged
    # small_charge_burst: 2-8 tiny charges at one merchant within a day.
    card_accts = [a for a, g in acct_groups if g != "checking"] or [a for a, _ in acct_groups]
    for t, s in plan:
        if t != T["small_charge_burst"]:
            continue
        m = catalog.index[_BURST_MERCHANTS[int(rng.integers(len(_BURST_MERCHANTS)))]]
        day0 = int(rng.integers(cal.n))
        days = np.minimum(day0 + (rng.random(s) < 0.2), cal.n - 1)
        tmpl = catalog.pick_templates(m, s, rng)
        acct = card_accts[int(rng.integers(len(card_accts)))]
        cents = -rng.integers(50, 500, size=s)
        token = np.repeat(_tokens(rng, 1), s)  # one descriptor for the whole burst, as card testing shows
        b = _block(acct, days, cents, _CAT["other"], _pm_for(catalog, tmpl, _PM["credit_card"]), 0, m, tmpl,
                   token, False)
        b["anom"][:] = T["small_charge_burst"] + 1
        new_rows.append(b)
    # new_merchant_large: a never-seen merchant with a large amount.
    k = need[T["new_merchant_large"]] + fallback
    for _ in range(k):
        acct, group = acct_groups[int(rng.integers(len(acct_groups)))]
        name = (f"{_NEW_PREFIX[int(rng.integers(len(_NEW_PREFIX)))]} "
                f"{_NEW_SUFFIX[int(rng.integers(len(_NEW_SUFFIX)))]} {int(rng.integers(100, 1000))}")
        ref = "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), size=8))
        if group == "checking":
            desc, pm = f"WIRE TRANSFER TO {name} REF {ref}", _PM["bank_transfer"]
        else:
            city = _TRAVEL[int(rng.integers(len(_TRAVEL)))]
            desc, pm = (f"{name} {city}" if rng.random() < 0.6 else f"SQ *{name}"), _PM["credit_card"]
        overrides.append((desc, name.title()))
        day = int(rng.choice(cal.n, p=cal.profile("biz")))
        amount = min(max(rng.lognormal(math.log(6000), 0.5), 2000), 15000)
        b = _block(acct, [day], [-round(amount * 100)], _CAT[_NEW_CATEGORIES[int(rng.integers(5))]], [pm], 0,
                   0, [0], _tokens(rng, 1), False)
        b["override"][:] = len(overrides) - 1
        b["anom"][:] = T["new_merchant_large"] + 1
        new_rows.append(b)
    return _concat([core] + new_rows)


def _entry_medians() -> dict[int, float]:
    """Merchant index -> the largest median amount over its (expense) entries."""
    keys = list(_MERCHANTS)
    out: dict[int, float] = {}
    for e in _ENTRY_LIST:
        if e.category:
            m = keys.index(e.merchant)
            out[m] = max(out.get(m, 0.0), e.median)
    return out


# ---------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------
_B36 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def _base36(x: np.ndarray, width: int) -> np.ndarray:
    x = x.astype(np.uint64)
    digits = np.empty((len(x), width), dtype=np.int64)
    for i in range(width):
        digits[:, width - 1 - i] = (x % 36).astype(np.int64)
        x = x // 36
    chars = np.ascontiguousarray(_B36[digits])
    return chars.view(f"<U{width}").reshape(len(x)).astype(object)


def _digits(x: np.ndarray, width: int) -> np.ndarray:
    return np.strings.zfill((x % (10 ** width)).astype(np.uint64).astype(str), width).astype(object)


def _render_descriptions(catalog: _Catalog, cal: _Calendar, tmpl: np.ndarray, token: np.ndarray,
                         day: np.ndarray, override: np.ndarray, overrides: list) -> np.ndarray:
    out = np.empty(len(tmpl), dtype=object)
    order = np.argsort(tmpl, kind="stable")
    sorted_t = tmpl[order]
    bounds = np.flatnonzero(np.diff(sorted_t)) + 1
    for idx in np.split(order, bounds):
        if not len(idx):
            continue
        t = int(tmpl[idx[0]])
        parts, flags = catalog.tmpl_parts[t], catalog.is_placeholder[t]
        if not any(flags):
            out[idx] = parts[0]
            continue
        m = catalog.tmpl_merchant[t]
        tok = token[idx]
        acc = None
        for part, ph in zip(parts, flags):
            if not ph:
                piece = part
            elif part in ("store", "city"):
                u = ((tok >> np.uint64(44)) & np.uint64(0xFFFF)).astype(np.float64) / 65536.0
                which = np.minimum((u * u * len(catalog.stores[m])).astype(np.int64), len(catalog.stores[m]) - 1)
                piece = (catalog.stores[m] if part == "store" else catalog.cities[m])[which]
            elif part == "mmdd":
                piece = cal.mmdd[day[idx]]
            elif part.startswith("ref"):
                piece = _base36(tok & np.uint64((1 << 44) - 1), int(part[3:]))
            else:
                piece = _digits(tok >> np.uint64(20), int(part[3:]))
            acc = piece if acc is None else acc + piece
        out[idx] = acc
    ov = np.flatnonzero(override >= 0)
    for i in ov:
        out[i] = overrides[override[i]][0]
    return out


def _format_amounts(cents: np.ndarray) -> np.ndarray:
    a = np.abs(cents)
    whole = (a // 100).astype(str)
    frac = np.strings.zfill((a % 100).astype(str), 2)
    s = np.strings.add(np.strings.add(whole, "."), frac)
    return np.where(cents < 0, np.strings.add("-", s), s).astype(object)


def _money(cents: int, symbol: bool) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{'$' if symbol else ''}{abs(cents) / 100:,.2f}"


_PM_TYPOS = {
    "credit_card": ("credit_car", " Credit Card ", "CREDIT_CARD", "Credit card"),
    "debit_card": ("debit_crd", " Debit Card ", "DEBIT_CARD"),
    "bank_transfer": ("bank_tranfer", "Bank Transfer", " BANK_TRANSFER"),
    "ach": ("ACH", " ach ", "Ach"),
    "check": ("Check", "chek", " CHECK"),
    "cash": ("Cash", " CASH "),
    "paypal": ("PayPal", "paypall", " PAYPAL"),
}


# ---------------------------------------------------------------------------------------------------
# Transfers between the user's own accounts
# ---------------------------------------------------------------------------------------------------
_CHECKING, _CARD, _PERSONAL, _SAVINGS = "business_checking", "business_credit_card", "personal_card", "business_savings"
_XFER_KINDS = ("card_payment", "owner_draw", "to_savings", "from_savings")
_XFER_NAMES = {_CHECKING: "Business Checking", _CARD: "Business Credit Card", _PERSONAL: "Personal Checking",
               _SAVINGS: "Business Savings"}
# (out-side descriptors, in-side descriptors): {out4} / {in4} are the last digits of the accounts'
# numbers, {ref} a transfer reference. Some checking-side texts name no account (real ones do not).
_XFER_TEXT = {
    "card_payment": ((("ONLINE TRANSFER TO CARD ...{in4}", 4), ("CREDIT CRD AUTOPAY PPD ID: {ref}", 3),
                      ("TITAN BANK CARD PMT ...{in4} WEB ID {ref}", 2), ("ONLINE PAYMENT TO CREDIT CARD {in4}", 1)),
                     (("PAYMENT THANK YOU", 4), ("AUTOPAY PAYMENT - THANK YOU", 3),
                      ("ONLINE PAYMENT - THANK YOU", 2), ("MOBILE PAYMENT THANK YOU", 1))),
    "owner_draw": ((("ONLINE TRANSFER TO CHK ...{in4} TRANSACTION#: {ref}", 3), ("OWNER DRAW TO ...{in4}", 1)),
                   (("ONLINE TRANSFER FROM CHK ...{out4} TRANSACTION#: {ref}", 3), ("DEPOSIT FROM ...{out4}", 1))),
    "to_savings": ((("TRANSFER TO SAVINGS ...{in4}", 3), ("ONLINE TRANSFER TO SAV ...{in4} REF #{ref}", 1)),
                   (("TRANSFER FROM CHECKING ...{out4}", 3), ("ONLINE TRANSFER FROM CHK ...{out4} REF #{ref}", 1))),
    "from_savings": ((("TRANSFER TO CHECKING ...{in4}", 1),), (("TRANSFER FROM SAVINGS ...{out4}", 1),)),
}


def _last4(name: str) -> str:
    return account_id(name, "ofx")[-4:]


def _transfer_rng(seed: int) -> np.random.Generator:
    """Transfers draw from their own stream, so a run without them (one account, the committed
    fixtures) consumes the main stream exactly as before."""
    return np.random.default_rng(int(hashlib.sha256(f"titans-transfers|{seed}".encode()).hexdigest()[:16], 16))


def _transfer_plan(cal: _Calendar, accounts: Sequence[str], rng: np.random.Generator) -> list[dict]:
    """When money moves, between which accounts: a dict per transfer (kind, out/in account index,
    out/in day, the card cycle it pays or a fixed amount). Amounts that depend on spending are
    filled in by `_transfer_rows` once every other row exists.

    - card payment (checking -> business card): the statement balance, paid in full every month;
      the statement closes on a fixed day (18th-25th), autopay debits checking 21-25 days later
      (the next business day) and the card posts it between 2 days before and 3 days after.
    - owner draw (checking -> personal account): on the first business day of each month, last
      month's personal spending rounded up to 100; posted 0-3 days later on the personal side.
    - savings (checking <-> business savings): 500-2,500 (a multiple of 100) on the 28th of most
      months, and every 5-8 months 1,000-5,000 back to checking; the other side 0-2 days later.
    """
    pos = {name: a for a, name in enumerate(accounts)}
    plan: list[dict] = []
    if _CHECKING not in pos:
        return plan
    chk = pos[_CHECKING]
    months = [(y, m) for y in range(cal.start.year - 1, cal.end.year + 1) for m in range(1, 13)]

    def idx(y: int, m: int, d: int) -> int:
        dim = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(1)).day
        return cal.day_index(dt.date(y, m, min(d, dim)))

    def biz(i: int) -> int:
        return cal.next_business(i) if 0 <= i < cal.n else i

    def add(kind, out, into, d_out, d_in, **extra):
        if 0 <= d_out < cal.n and 0 <= d_in < cal.n:
            plan.append({"kind": kind, "out": out, "in": into, "day_out": d_out, "day_in": d_in, **extra})

    if _CARD in pos:
        close_day = int(rng.integers(18, 26))
        lag = int(rng.integers(21, 26))
        prev_close = None
        for y, m in months:
            close = idx(y, m, close_day)
            if prev_close is not None and close >= 0:
                d_out = biz(close + lag)
                d_in = d_out + int(rng.choice([-2, -1, 0, 0, 1, 1, 1, 2, 3]))
                add("card_payment", chk, pos[_CARD], d_out, d_in, cycle=(max(prev_close + 1, 0), close))
            prev_close = close
    if _PERSONAL in pos:
        for y, m in months:
            first = idx(y, m, 1)
            d_out = biz(first)
            d_in = d_out + int(rng.choice([0, 0, 1, 1, 2, 3]))
            prev_first = idx(y - (m == 1), (m - 2) % 12 + 1, 1)
            add("owner_draw", chk, pos[_PERSONAL], d_out, d_in, cycle=(max(prev_first, 0), first - 1))
    if _SAVINGS in pos:
        sav = pos[_SAVINGS]
        back_in = int(rng.integers(5, 9))
        for y, m in months:
            d_out = idx(y, m, 28)
            d_out = cal.prev_business(d_out) if 0 <= d_out < cal.n else d_out
            skip = rng.random() < 0.15
            amount = int(rng.integers(5, 26)) * 10_000
            gap = int(rng.choice([0, 1, 1, 2]))
            if not skip:
                add("to_savings", chk, sav, d_out, d_out + gap, amount=amount)
            back_in -= 1
            if back_in == 0:
                back_in = int(rng.integers(5, 9))
                d = biz(idx(y, m, int(rng.integers(3, 20))))
                add("from_savings", sav, chk, d, d + int(rng.choice([0, 1])), amount=int(rng.integers(10, 51)) * 10_000)
    plan.sort(key=lambda p: (p["day_out"], p["kind"], p["out"], p["in"]))
    return plan


def _transfer_rows(plan: list[dict], core: dict[str, np.ndarray], accounts: Sequence[str], rng: np.random.Generator,
                   overrides: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Both sides of every planned transfer as rows (`xfer` = the pair's index in `plan`; the
    description and reference through `overrides`). Card payments pay the cycle's charges net of
    refunds (25.00 when that is not positive); owner draws cover last month's personal spending."""
    blocks = []
    for p_i, p in enumerate(plan):
        if "amount" in p:
            cents = int(p["amount"])
        else:
            lo, hi = p["cycle"]
            acct = p["in"]
            sel = (core["acct"] == acct) & (core["day"] >= lo) & (core["day"] <= hi)
            spent = -int(core["cents"][sel].sum())
            if p["kind"] == "owner_draw":
                cents = max(-(-spent // 10_000) * 10_000, 50_000)
            else:
                cents = spent if spent > 0 else 2_500
        out_name, in_name = accounts[p["out"]], accounts[p["in"]]
        out_t, in_t = _XFER_TEXT[p["kind"]]
        fill = {"out4": _last4(out_name), "in4": _last4(in_name), "ref": f"{int(rng.integers(10**9, 10**10))}"}
        for _side, texts, acct, day, sign, other in (("out", out_t, p["out"], p["day_out"], -1, in_name),
                                                     ("in", in_t, p["in"], p["day_in"], 1, out_name)):
            w = np.array([t[1] for t in texts], dtype=float)
            text = texts[int(rng.choice(len(texts), p=w / w.sum()))][0].format(**fill)
            overrides.append((text, _XFER_NAMES.get(other, other)))
            b = _block(acct, [day], [sign * cents], -1, [_PM["bank_transfer"]], 0 if sign < 0 else 1, 0, [0],
                       _tokens(rng, 1), False)
            b["override"][:] = len(overrides) - 1
            b["xfer"][:] = p_i
            blocks.append(b)
        p["cents"] = cents
    return _concat(blocks)


# ---------------------------------------------------------------------------------------------------
# the demo's ledger
# ---------------------------------------------------------------------------------------------------
# A fixed calendar: generated "up to today", the demo's data (weekdays, month ends, holidays, the
# random draws laid on them) and therefore its metrics changed every day. Anchored here, `titans demo`
# prints the same rows, checks and metrics on any day.
DEMO_END_DATE = dt.date(2025, 12, 31)
DEMO_YEARS = 2.0
DEMO_SEED = 42


# The demo lands two formats: the checking account as a QIF register (Quicken's export: the account
# named in the file, categories kept), the cards as the seed CSV. A bank statement (OFX, CAMT.053,
# MT940) would load too (an uncategorised expense is a warning), but it carries no categories, and
# the demo's category model would lose the checking account's labels.
DEMO_FORMATS = {"business_checking": "qif"}


def generate_demo(out_dir: Path, *, rows: int | None = None, labels_dir: Path | None = None) -> GenerationSummary:
    """The demo's sample ledgers: two years ending on DEMO_END_DATE (or `rows` rows ending then), the
    checking account as a QIF register and the two cards as CSV exports (DEMO_FORMATS)."""
    return generate(out_dir, rows=rows, years=None if rows else DEMO_YEARS, seed=DEMO_SEED,
                    end_date=DEMO_END_DATE, labels_dir=labels_dir, format=DEMO_FORMATS)


def generated_as_of(landing_dir: Path, labels_dir: Path) -> dt.date | None:
    """The end date of the generated ledger when the landing folder holds exactly its files, unchanged
    (the manifest's sha256 of every file), else None: data the generator made for a date is judged as
    of that date, a user's own files as of today."""
    manifest_path = Path(labels_dir) / "manifest.json"
    landing_dir = Path(landing_dir)
    if not manifest_path.is_file() or not landing_dir.is_dir():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = {name: f["sha256"] for name, f in manifest["files"].items()}
        end = dt.date.fromisoformat(manifest["end_date"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    suffixes = set(_EXTENSIONS.values())
    present = {p.relative_to(landing_dir).as_posix(): p for p in landing_dir.rglob("*")
               if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")}
    if set(present) != set(expected):
        return None
    for name, path in present.items():
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected[name]:
            return None
    return end


# ---------------------------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------------------------
def generate(
    out_dir: Path,
    *,
    rows: int | None = None,
    years: float | None = None,
    accounts: Sequence[str] = DEFAULT_ACCOUNTS,
    seed: int = 42,
    anomaly_rate: float = 0.01,
    messy_rate: float = 0.01,
    label_noise: float = 0.02,
    end_date: dt.date | None = None,
    labels_dir: Path | None = None,
    file_quirks: bool | None = None,
    format: str | Mapping[str, str] = "csv",  # noqa: A002 - the CLI option's name
) -> GenerationSummary:
    """Write `<account>.csv` files to `out_dir` and the ground truth to `labels_dir` (see module docstring).

    `file_quirks` (default: on when messy_rate > 0) toggles the file-level quirks (odd header, extra
    column, CRLF, no trailing newline); row-level messiness is controlled by messy_rate alone.
    `format` is `csv` or a statement format (FORMATS) for every file, or a mapping account -> format
    (accounts it does not name stay CSV): see "Statement formats" in the module docstring.
    """
    out_dir = Path(out_dir)
    labels_dir = Path(labels_dir) if labels_dir is not None else out_dir.parent / "labels"
    accounts = tuple(accounts)
    _validate(out_dir, labels_dir, rows, years, accounts, anomaly_rate, messy_rate, label_noise)
    file_formats = _file_formats(format, accounts)
    end = end_date if end_date is not None else dt.date.today()
    if isinstance(end, dt.datetime):
        end = end.date()
    rng = np.random.default_rng(seed)
    acct_groups = [(a, g) for a, name in enumerate(accounts) for g in ACCOUNTS[name]]
    groups = [g for _, g in acct_groups]
    base_per_year = _base_rows_per_year(groups)
    if years is None:
        years_used = 2.0 if rows is None else min(2.0, rows / base_per_year)
    else:
        years_used = float(years)
    n_days = max(_MIN_DAYS, round(years_used * 365.25))
    start = end - dt.timedelta(n_days - 1)
    cal = _Calendar(start, n_days, rng)
    catalog = _Catalog(rng)

    rec = _recurring(cal, catalog, acct_groups, rng)
    n_rec = len(rec["day"])
    disc_rate = sum(e.per_month for g in groups for e in _ENTRY_LIST if e.group == g) * n_days / 30.4375
    # Transfers between the accounts (own stream: see _transfer_rng), both sides counted in the rows.
    xfer_rng = _transfer_rng(seed)
    xfer_plan = _transfer_plan(cal, accounts, xfer_rng)
    if rows is not None and 2 * len(xfer_plan) > rows // 10:  # a tiny sample: no room for them
        xfer_plan = []
    n_xfer = 2 * len(xfer_plan)
    # The number of rows: exact when asked for, else recurring + Poisson(base rate) discretionary.
    n_rows = rows if rows is not None else n_rec + int(rng.poisson(disc_rate)) + n_xfer
    plan = _plan_anomalies(n_rows, anomaly_rate, rng)
    n_disc = max(n_rows - n_xfer - n_rec - _added_rows(plan), 0)
    disc = _discretionary(cal, catalog, acct_groups, n_disc, rng)
    core = _concat([rec, disc])
    overrides: list[tuple[str, str]] = []
    core = _apply_anomalies(core, plan, cal, catalog, acct_groups, rng, overrides)
    if len(core["day"]) > n_rows - n_xfer:  # tiny runs only (recurring items alone exceed rows): keep the newest
        keep = np.sort(np.lexsort((rng.random(len(core["day"])), -core["day"].astype(np.int64)))[:n_rows - n_xfer])
        core = _take(core, keep)
    if n_xfer:
        core = _concat([core, _transfer_rows(xfer_plan, core, accounts, xfer_rng, overrides)])
    n = len(core["day"])

    # Pending: the last days of card and ACH activity have not settled yet.
    recent = core["day"] >= cal.n - 3
    pending = recent & (rng.random(n) < 0.5) & (core["status"] != 3)
    core["status"][pending] = 2

    # Label noise: near-duplicate category on a fraction of expense rows (never on anomalies).
    written_cat = core["cat"].copy()
    noisy = np.zeros(n, dtype=bool)
    pool = np.flatnonzero((core["cat"] >= 0) & (core["anom"] == 0))
    k = min(round(label_noise * int((core["cat"] >= 0).sum())), len(pool))
    if k:
        pick = rng.choice(pool, size=k, replace=False)
        for c in np.unique(core["cat"][pick]):
            sel = pick[core["cat"][pick] == c]
            near = _NEAR[CATEGORIES[c]]
            written_cat[sel] = np.array([_CAT[x] for x in near], dtype=np.int16)[rng.integers(len(near), size=len(sel))]
        noisy[pick] = True

    # Receipts: likelier for larger purchases, subscriptions and invoices.
    amt = np.abs(core["cents"])
    p_receipt = np.where(core["cat"] < 0, 0.5, np.where(amt >= 2500, 0.6, 0.15))
    p_receipt = np.where(~core["disc"] & (core["cat"] == _CAT["software"]), 0.9, p_receipt)
    receipt = (rng.random(n) < p_receipt) & (core["xfer"] < 0)

    # Files: quirks, ordering, messy rows.
    files = []
    quirk_rng = [rng.random(4) for _ in accounts]
    guaranteed = [int(rng.integers(len(accounts))) for _ in range(4)]
    with_quirks = messy_rate > 0 if file_quirks is None else bool(file_quirks)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    anomaly_rows: list[tuple] = []
    noise_rows: list[tuple] = []
    xfer_sides: dict[tuple[int, str], tuple] = {}
    manifest_files = {}
    paths = []
    for a, name in enumerate(accounts):
        idx = np.flatnonzero(core["acct"] == a)
        order = np.lexsort((rng.random(len(idx)), -core["day"][idx].astype(np.int64)))
        idx = idx[order]
        quirks = {q: bool(with_quirks and (guaranteed[j] == a or quirk_rng[a][j] < 0.25))
                  for j, q in enumerate(("messy_header", "extra_column", "crlf", "no_trailing_newline"))}
        m = len(idx)
        n_messy = round(messy_rate * m)
        messy_pos = np.sort(rng.choice(m, size=min(n_messy, m), replace=False)) if n_messy else np.empty(0, np.int64)
        kinds = np.full(m, -1, dtype=np.int8)
        kinds[messy_pos] = rng.integers(len(MESSY_KINDS), size=len(messy_pos))
        bad_ok = messy_pos[(core["anom"][idx[messy_pos]] == 0) & ~noisy[idx[messy_pos]] & (core["xfer"][idx[messy_pos]] < 0)]
        n_bad = min(round(INVALID_SHARE * n_messy), len(bad_ok))
        bad_pos = np.sort(rng.choice(bad_ok, size=n_bad, replace=False)) if n_bad else np.empty(0, np.int64)
        invalid = np.full(m, -1, dtype=np.int8)
        invalid[bad_pos] = rng.integers(len(INVALID_REASONS), size=n_bad)
        kinds[bad_pos] = -1
        fmt = file_formats[a]
        if fmt != "csv":  # a bank's statement: no CSV formatting to be messy about, no invalid rows
            quirks = dict.fromkeys(quirks, False)
            kinds[:] = -1
            invalid[:] = -1
            n_bad = 0
        fname = f"{name}{_EXTENSIONS[fmt]}"
        path = out_dir / fname
        if fmt == "csv":
            info = _write_file(path, core, idx, written_cat, receipt, kinds, invalid, quirks, catalog, cal, overrides,
                               fname, anomaly_rows, noise_rows, noisy)
        else:
            info = _write_statement(path, fmt, a, name, core, idx, written_cat, catalog, cal, overrides, end,
                                    fname, anomaly_rows, noise_rows, noisy)
        paths.append(path)
        for j in np.flatnonzero(core["xfer"][idx] >= 0):
            r = idx[j]
            xfer_sides[(int(core["xfer"][r]), "out" if core["cents"][r] < 0 else "in")] = (
                fname, int(info["lines"][j]), cal.iso[core["day"][r]], name)
        manifest_files[fname] = {
            # (CSV manifests stay as they were: the committed fixtures' bytes)
            **({"format": fmt, "account_id": info["account_id"]} if fmt != "csv" else {}),
            "account": name, "data_rows": m, "valid_rows": m - n_bad, "invalid_rows": n_bad, "messy_valid_rows": int((kinds >= 0).sum()),
            "anomaly_rows": int((core["anom"][idx] > 0).sum()), "label_noise_rows": int(noisy[idx].sum()),
            "header": [] if fmt != "csv" else
            list(MESSY_HEADER if quirks["messy_header"] else HEADER) + ([EXTRA_COLUMN] if quirks["extra_column"] else []),
            "extra_columns": [EXTRA_COLUMN] if quirks["extra_column"] else [],
            "line_terminator": "\r\n" if quirks["crlf"] else "\n", "trailing_newline": not quirks["no_trailing_newline"],
            "first_date": info["first"], "last_date": info["last"], "sha256": info["sha256"], "invalid": info["invalid"],
        }
        files.append(fname)

    anomalies_path = labels_dir / "anomalies.csv"
    anomaly_rows.sort(key=lambda r: (r[0], r[1]))
    _atomic_write(anomalies_path, _csv_text(("file", "line_number", "date", "description", "amount", "anomaly_type"),
                                            anomaly_rows))
    noise_path = labels_dir / "label_noise.csv"
    noise_rows.sort(key=lambda r: (r[0], r[1]))
    _atomic_write(noise_path, _csv_text(("file", "line_number", "true_category", "written_category"), noise_rows))
    # Transfers: one row per pair (only where the accounts allow any, so one-account runs and the
    # committed fixtures write exactly what they did).
    with_transfers = _CHECKING in accounts and any(a in accounts for a in (_CARD, _PERSONAL, _SAVINGS))
    transfer_rows = []
    for p_i, p in enumerate(xfer_plan):
        o, i = xfer_sides[(p_i, "out")], xfer_sides[(p_i, "in")]
        transfer_rows.append((p_i + 1, p["kind"], _format_amounts(np.array([p["cents"]]))[0], o[3], o[0], o[1], o[2],
                              i[3], i[0], i[1], i[2]))
    extra_paths: tuple[Path, ...] = ()
    if with_transfers:
        transfers_path = labels_dir / "transfers.csv"
        _atomic_write(transfers_path, _csv_text(
            ("pair_id", "kind", "amount", "out_account", "out_file", "out_line", "out_date",
             "in_account", "in_file", "in_line", "in_date"), transfer_rows))
        extra_paths = (transfers_path,)
    by_type = {t: 0 for t in ANOMALY_TYPES}
    for r in anomaly_rows:
        by_type[r[5]] += 1
    by_reason = {r: 0 for r in INVALID_REASONS}
    for f in manifest_files.values():
        for inv in f["invalid"]:
            by_reason[inv["reason"]] += 1
    manifest = {
        "generator": "titans_assets.lib.generator", "format_version": 1,
        "args": {"rows": rows, "years": years, "accounts": list(accounts), "seed": seed, "anomaly_rate": anomaly_rate,
                  "messy_rate": messy_rate, "label_noise": label_noise, "end_date": end.isoformat(),
                  "file_quirks": file_quirks,
                  **({"format": format if isinstance(format, str) else dict(sorted(format.items()))}
                     if set(file_formats) != {"csv"} else {})},
        "start_date": start.isoformat(), "end_date": end.isoformat(), "years_used": round(n_days / 365.25, 4),
        "files": manifest_files,
        "totals": {"data_rows": n, "valid_rows": n - sum(f["invalid_rows"] for f in manifest_files.values()),
                    "invalid_rows": sum(f["invalid_rows"] for f in manifest_files.values()),
                    "anomaly_rows": len(anomaly_rows), "label_noise_rows": len(noise_rows)},
        "anomalies_by_type": by_type, "invalid_by_reason": by_reason,
        "ground_truth": {"anomalies": "anomalies.csv", "label_noise": "label_noise.csv"},
    }
    if with_transfers:
        manifest["totals"]["transfer_pairs"] = len(transfer_rows)
        manifest["ground_truth"]["transfers"] = "transfers.csv"
    manifest_path = labels_dir / "manifest.json"
    _atomic_write(manifest_path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return GenerationSummary(
        out_dir=out_dir, labels_dir=labels_dir, start_date=start, end_date=end, years=round(n_days / 365.25, 4),
        rows={f: manifest_files[f]["data_rows"] for f in files},
        invalid_rows={f: manifest_files[f]["invalid_rows"] for f in files},
        anomalies=by_type, label_noise_rows=len(noise_rows),
        paths=tuple(paths) + (anomalies_path, noise_path, manifest_path) + extra_paths, manifest=manifest,
        transfer_pairs=len(transfer_rows),
    )


def _validate(out_dir, labels_dir, rows, years, accounts, anomaly_rate, messy_rate, label_noise) -> None:
    if rows is not None and (not isinstance(rows, (int, np.integer)) or rows < 1):
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if years is not None and not (0 < years <= _MAX_YEARS):
        raise ValueError(f"years must be in (0, {_MAX_YEARS:g}], got {years!r}")
    if not accounts:
        raise ValueError("accounts: at least one account is needed")
    unknown = [a for a in accounts if a not in ACCOUNTS]
    if unknown:
        raise ValueError(f"accounts: unknown {', '.join(map(repr, unknown))}; known: {', '.join(ACCOUNTS)}")
    if len(set(accounts)) != len(accounts):
        raise ValueError("accounts: each account may appear once")
    for name, v, hi in (("anomaly_rate", anomaly_rate, 0.2), ("messy_rate", messy_rate, 0.5),
                        ("label_noise", label_noise, 0.5)):
        if not (0 <= v <= hi):
            raise ValueError(f"{name} must be between 0 and {hi}, got {v!r}")
    out_r, lab_r = out_dir.resolve(), labels_dir.resolve()
    if lab_r == out_r or out_r in lab_r.parents:
        raise ValueError(f"labels_dir {labels_dir} is inside the landing folder {out_dir}: "
                         "ground truth must stay out of the data the pipeline loads")


def _csv_text(header: Sequence[str], rows: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    os.replace(tmp, path)


def _write_file(path, core, idx, written_cat, receipt, kinds, invalid, quirks, catalog, cal, overrides,
                fname, anomaly_rows, noise_rows, noisy) -> dict:
    """Write one export in chunks; collect ground-truth rows; return sha256, dates and invalid rows."""
    eol = "\r\n" if quirks["crlf"] else "\n"
    header = list(MESSY_HEADER if quirks["messy_header"] else HEADER) + ([EXTRA_COLUMN] if quirks["extra_column"] else [])
    tmp = path.with_name(f".{path.name}.tmp")
    digest = hashlib.sha256()
    invalid_list = []
    m = len(idx)
    cat_names = np.array(list(CATEGORIES) + [""], dtype=object)  # index -1 -> ""
    pm_names = np.array(PAYMENT_METHODS, dtype=object)
    status_names = np.array(STATUSES, dtype=object)
    names = np.array(catalog.names, dtype=object)
    with open(tmp, "wb") as fh:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator=eol)
        writer.writerow(header)
        for lo in range(0, max(m, 1), _CHUNK):
            sel = idx[lo:lo + _CHUNK]
            k = len(sel)
            if k:
                day, cents, tok = core["day"][sel], core["cents"][sel], core["token"][sel]
                date_s = cal.iso[day]
                type_s = np.where(cents > 0, "Income", "Expense").astype(object)
                desc = _render_descriptions(catalog, cal, core["tmpl"][sel], tok, day, core["override"][sel], overrides)
                amount = _format_amounts(cents)
                category = cat_names[written_cat[sel]]
                pm = pm_names[core["pm"][sel]]
                status = status_names[core["status"][sel]]
                ref = names[core["merch"][sel]]
                override, anom, true_cat, cat_sel = core["override"][sel], core["anom"][sel], core["cat"][sel], written_cat[sel]
                for i in np.flatnonzero(override >= 0):
                    ref[i] = overrides[override[i]][1]
                code = _base36(tok >> np.uint64(20), 10)
                url = np.where(receipt[sel], "https://receipts.example.com/r/" + code, "").astype(object)
                income = cents > 0
                url = np.where(receipt[sel] & income, "https://invoices.example.com/inv/" + code + ".pdf", url)
                clean_desc, clean_amount = desc.copy(), amount
                amount = amount.copy()
                # Ground truth (clean values) before messy formatting.
                lines = np.arange(lo, lo + k) + 2
                for i in np.flatnonzero(anom > 0):
                    anomaly_rows.append((fname, int(lines[i]), date_s[i], clean_desc[i], clean_amount[i],
                                         ANOMALY_TYPES[anom[i] - 1]))
                for i in np.flatnonzero(noisy[sel]):
                    noise_rows.append((fname, int(lines[i]), CATEGORIES[true_cat[i]], CATEGORIES[cat_sel[i]]))
                # Messy but valid.
                kk = kinds[lo:lo + k]
                for i in np.flatnonzero(kk >= 0):
                    kind = MESSY_KINDS[kk[i]]
                    t = int(tok[i])
                    if kind == "currency_symbol" or (kind == "thousands_separator" and abs(cents[i]) < 100_000):
                        amount[i] = _money(int(cents[i]), True)
                    elif kind == "thousands_separator":
                        amount[i] = _money(int(cents[i]), False)
                    elif kind == "whitespace":
                        amount[i] = " " + amount[i] + " "
                        desc[i] = "  " + desc[i] + " " if t % 2 else desc[i] + "   "
                        ref[i] = ref[i] + " "
                    else:
                        typos = _PM_TYPOS[pm[i]]
                        pm[i] = typos[t % len(typos)]
                # Invalid rows.
                inv = invalid[lo:lo + k]
                for i in np.flatnonzero(inv >= 0):
                    reason = INVALID_REASONS[inv[i]]
                    t = int(tok[i])
                    if reason == "bad_date":
                        value = (f"{date_s[i][:4]}-13-45", "yesterday", f"{date_s[i][:4]}-02-30")[t % 3]
                        date_s[i] = value
                    elif reason == "missing_amount":
                        value = amount[i] = ""
                    elif reason == "non_numeric_amount":
                        value = amount[i] = ("abc", "TBD", "12.3.4")[t % 3]
                    else:
                        value = type_s[i] = "Refund"
                    invalid_list.append({"line_number": int(lines[i]), "reason": reason, "value": value})
                cols = [date_s, type_s, desc, amount, category, pm, status, ref, url]
                if quirks["extra_column"]:
                    notes = np.full(k, "", dtype=object)
                    num = _digits(tok >> np.uint64(20), 4)
                    r = (tok % np.uint64(100)).astype(np.int64)
                    notes[income & (r < 30)] = "Invoice " + num[income & (r < 30)] + ", net 30"
                    notes[~income & (r < 3)] = "reimbursable, see receipt"
                    cols.append(notes)
                writer.writerows(zip(*[c.tolist() for c in cols]))
            text = buf.getvalue()
            if lo + _CHUNK >= m and quirks["no_trailing_newline"] and text.endswith(eol):
                text = text[: -len(eol)]
            data = text.encode("utf-8")
            digest.update(data)
            fh.write(data)
            buf.seek(0)
            buf.truncate()
    os.replace(tmp, path)
    days = core["day"][idx]
    return {"sha256": digest.hexdigest(), "invalid": invalid_list, "lines": np.arange(m) + 2,
                "first": cal.iso[days.min()] if m else None, "last": cal.iso[days.max()] if m else None}


# ---------------------------------------------------------------------------------------------------
# Statement formats
# ---------------------------------------------------------------------------------------------------
FORMATS = ("csv", *writers.FORMATS)
_EXTENSIONS = {"csv": ".csv", **writers.EXTENSIONS}
_OPENING_CENTS = {"business_checking": 2_500_000, "ledger": 2_500_000, "personal_card": 1_000_000,
                  "business_savings": 1_000_000}  # the business card opens at 0.00
_CARD_ACCOUNTS = {"business_credit_card"}


def _file_formats(fmt: str | Mapping[str, str], accounts: Sequence[str]) -> list[str]:
    by_account = {a: fmt for a in accounts} if isinstance(fmt, str) else {a: fmt.get(a, "csv") for a in accounts}
    if not isinstance(fmt, str):
        unknown = sorted(set(fmt) - set(accounts))
        if unknown:
            raise ValueError(f"format: accounts {', '.join(unknown)} are not generated")
    bad = sorted({f for f in by_account.values() if f not in FORMATS})
    if bad:
        raise ValueError(f"format {', '.join(map(repr, bad))}: known {', '.join(FORMATS)}")
    return [by_account[a] for a in accounts]


def account_id(name: str, fmt: str) -> str:
    """The account a generated statement names: an IBAN (GB, check digits computed) in CAMT.053 and
    MT940, its 12-digit number in OFX, the generator's account name in QIF (and CSV, by file name)."""
    number = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) % 10**8
    if fmt in ("camt053", "mt940"):
        bban = f"TITN400000{number:08d}"
        digits = "".join(str(int(c, 36)) for c in bban + "GB00")
        return f"GB{98 - int(digits) % 97:02d}{bban}"
    if fmt == "ofx":
        return f"4000{number:08d}"
    return name


def _write_statement(path, fmt, a, name, core, idx, written_cat, catalog, cal, overrides, end, fname,
                     anomaly_rows, noise_rows, noisy) -> dict:
    """One account's rows as a bank statement (oldest first, as banks write them). Bank ids are
    `YYMMDD` + 4 characters of the row's token + its 6-digit ordinal in the statement: unique per
    statement (a duplicated charge has its own), deterministic, at most 16 characters (MT940)."""
    idx = idx[::-1]
    day, cents, tok = core["day"][idx], core["cents"][idx], core["token"][idx]
    dates = cal.iso[day]
    desc = _render_descriptions(catalog, cal, core["tmpl"][idx], tok, day, core["override"][idx], overrides)
    ref = np.array(catalog.names, dtype=object)[core["merch"][idx]]
    for i in np.flatnonzero(core["override"][idx] >= 0):
        ref[i] = overrides[core["override"][idx][i]][1]
    cat_names = np.array(list(CATEGORIES) + [""], dtype=object)
    category = cat_names[written_cat[idx]]
    if fmt == "qif":  # a transfer's category is the other account, in brackets (Quicken's way)
        for i in np.flatnonzero(core["xfer"][idx] >= 0):
            category[i] = f"[{ref[i]}]"
    code = _base36(tok >> np.uint64(24), 4)
    txns = [writers.Txn(d, int(c), s, f"{d[2:4]}{d[5:7]}{d[8:10]}{k}{i:06d}", r, g)
            for i, (d, c, s, r, g, k) in enumerate(zip(dates.tolist(), cents.tolist(), desc.tolist(), ref.tolist(),
                                                        category.tolist(), code.tolist()), 1)]
    statement = writers.Statement(
        account_id(name, fmt), txns, kind="credit_card" if name in _CARD_ACCOUNTS else "checking",
        opening_cents=_OPENING_CENTS.get(name, 0), statement_id=f"TF{end:%y%m%d}{a:02d}", created=end)
    data, starts = writers.write(fmt, statement)
    amounts = _format_amounts(cents)
    for i in np.flatnonzero(core["anom"][idx] > 0):
        anomaly_rows.append((fname, starts[i], dates[i], desc[i], amounts[i], ANOMALY_TYPES[core["anom"][idx][i] - 1]))
    for i in np.flatnonzero(noisy[idx]):
        noise_rows.append((fname, starts[i], CATEGORIES[core["cat"][idx][i]], category[i]))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"sha256": hashlib.sha256(data).hexdigest(), "invalid": [], "account_id": statement.account,
            "lines": np.array(starts, dtype=np.int64)[::-1],
            "first": dates.min() if len(idx) else None, "last": dates.max() if len(idx) else None}


def write_variant(src: Path, dst: Path, *, crlf: bool = False, trailing_newline: bool = True) -> Path:
    """Copy an export with different line ends / final newline (the quirks of real exports)."""
    text = Path(src).read_bytes().decode("utf-8").replace("\r\n", "\n")
    if not trailing_newline:
        text = text.rstrip("\n")
    elif not text.endswith("\n"):
        text += "\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    Path(dst).write_bytes(text.encode("utf-8"))
    return Path(dst)


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------
def read_export(path: Path) -> pd.DataFrame:
    """A lenient reader for reports and tests: canonical column names, typed date/amount, invalid rows
    dropped (column `line_number` keeps the physical line)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    df.columns = [re.sub(r"\s+", " ", c.strip().lower().replace("_", " ")) for c in df.columns]
    canon = {h.lower(): h for h in HEADER}
    df = df.rename(columns={c: canon[c] for c in df.columns if c in canon})
    df.insert(0, "line_number", np.arange(2, len(df) + 2))
    amount = pd.to_numeric(df["Amount"].str.replace(r"[$,\s]", "", regex=True), errors="coerce")
    date = pd.to_datetime(df["Date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    ok = amount.notna() & date.notna() & df["Type"].str.strip().isin(["Income", "Expense"])
    df = df.assign(Amount=amount, Date=date, file=Path(path).name)[ok]
    for c in ("Description", "Category", "Payment Method", "Status", "Reference"):
        df[c] = df[c].str.strip()
    return df.reset_index(drop=True)


def report(landing_dir: Path) -> dict:
    """Statistics of the exports in a folder, to check the data looks like what it claims."""
    paths = sorted(Path(landing_dir).glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no CSV files in {landing_dir}")
    df = pd.concat([read_export(p) for p in paths], ignore_index=True)
    exp = df[df["Type"] == "Expense"]
    inc = df[df["Type"] == "Income"]
    shares = exp["Category"].value_counts(normalize=True).round(4)
    q = exp.assign(a=-exp["Amount"]).groupby("Category")["a"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
    quantiles = {c: {f"p{int(k * 100)}": round(float(v), 2) for k, v in row.items()} for c, row in q.iterrows()}
    recurring = {}
    for (file, ref, cat), g in df.groupby(["file", "Reference", "Category"], sort=True):
        if len(g) < 6:
            continue
        d = np.sort(g["Date"].to_numpy().astype("datetime64[D]").astype(np.int64))
        gaps = np.diff(d)
        gaps = gaps[gaps > 0]
        if len(gaps) < 5:
            continue
        med = float(np.median(gaps))
        iqr = float(np.subtract(*np.percentile(gaps, [75, 25])))
        amounts = g["Amount"].abs()
        if med >= 6 and iqr <= 0.25 * med and amounts.std() <= 0.5 * amounts.mean():
            recurring[f"{file}:{ref}" + (f" ({cat})" if cat else " (income)")] = {
                "n": len(g), "median_days": med, "iqr_days": iqr, "median_amount": round(float(amounts.median()), 2)}
    wd = df["Date"].dt.day_of_week.value_counts(normalize=True).reindex(range(7), fill_value=0)
    mo = df["Date"].dt.month.value_counts(normalize=True).reindex(range(1, 13), fill_value=0)
    return {
        "files": {p.name: int((df["file"] == p.name).sum()) for p in paths},
        "rows": len(df), "expense_rows": len(exp), "income_rows": len(inc),
        "date_range": [df["Date"].min().date().isoformat(), df["Date"].max().date().isoformat()] if len(df) else None,
        "category_shares": {k: float(v) for k, v in shares.items()},
        "amount_quantiles": quantiles,
        "income_quantiles": {f"p{int(k * 100)}": round(float(v), 2)
                          for k, v in inc["Amount"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).items()} if len(inc) else {},
        "recurring": recurring,
        "weekday_shares": {d: round(float(wd[i]), 4) for i, d in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))},
        "month_shares": {i: round(float(mo[i]), 4) for i in range(1, 13)},
    }


def format_report(rep: dict) -> str:
    out = [f"{rep['rows']:,} valid rows ({rep['expense_rows']:,} expenses, {rep['income_rows']:,} income), "
           f"{rep['date_range'][0]} .. {rep['date_range'][1]}" if rep["date_range"] else "no rows"]
    out.append("files: " + ", ".join(f"{k} {v:,}" for k, v in rep["files"].items()))
    out.append("")
    out.append(f"{'category':<22}{'share':>7}{'p5':>10}{'p25':>10}{'p50':>10}{'p75':>10}{'p95':>11}")
    for c, s in rep["category_shares"].items():
        q = rep["amount_quantiles"][c]
        out.append(f"{c:<22}{s:>7.1%}" + "".join(f"{q[k]:>10,.2f}" for k in ("p5", "p25", "p50", "p75"))
                   + f"{q['p95']:>11,.2f}")
    if rep["income_quantiles"]:
        q = rep["income_quantiles"]
        out.append(f"{'(income)':<22}{'':>7}" + "".join(f"{q[k]:>10,.2f}" for k in ("p5", "p25", "p50", "p75"))
                   + f"{q['p95']:>11,.2f}")
    out.append("")
    out.append("recurring (median days between charges, IQR, n, median amount):")
    for k, v in rep["recurring"].items():
        out.append(f"  {k:<62}{v['median_days']:>6.1f}d  iqr {v['iqr_days']:>4.1f}  n {v['n']:>5}  "
                   f"{v['median_amount']:>10,.2f}")
    out.append("")
    out.append("weekday shares: " + "  ".join(f"{k} {v:.1%}" for k, v in rep["weekday_shares"].items()))
    out.append("month shares:   " + "  ".join(f"{k} {v:.1%}" for k, v in rep["month_shares"].items()))
    return "\n".join(out)
