"""Realistic synthetic bank / ledger exports, with ground truth kept outside the landing folder.

`generate(out_dir, ...)` writes one CSV per account in the canonical Titans Finance format
(`Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL`), newest-first
like real exports, and writes the ground truth (`anomalies.csv`, `label_noise.csv`, `manifest.json`)
to `labels_dir` (default `out_dir.parent / "labels"`), which the pipeline never loads: only the
anomaly model's evaluation reads `anomalies.csv` there (TITANS_LABELS_DIR), to score its holdout.
`report(landing_dir)` summarises what was written (category shares, amount quantiles, recurring
intervals, weekday and month shares) so a change to the generator shows up as numbers.

Every modelling choice (accounts, transfers, amounts, seasonality, anomalies, noise) and why:
docs/generator.md."""

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

from titans_assets.lib.csv_contract import CANONICAL_COLUMNS
from titans_assets.lib.formats import writers

HEADER = CANONICAL_COLUMNS  # the seed ledger's columns, in order
MESSY_HEADER = (
    " date",
    " TYPE ",
    "Description ",
    "AMOUNT",
    " Category",
    "payment method",
    "Status ",
    " reference",
    "Receipt Url",
)
EXTRA_COLUMN = "Notes"

CATEGORIES = (
    "software",
    "fuel",
    "meals_entertainment",
    "telephone",
    "travel",
    "office_supplies",
    "supplies",
    "computer_equipment",
    "training",
    "entertainment",
    "other",
    "maintenance",
    "repairs",
    "professional_fees",
    "vehicle_expenses",
    "home_office",
    "food",
    "rent",
    "vehicle",
    "hardware",
    "furniture",
    "bad_debts",
)
_CAT = {c: i for i, c in enumerate(CATEGORIES)}
PAYMENT_METHODS = ("credit_card", "debit_card", "bank_transfer", "ach", "check", "cash", "paypal")
_PM = {p: i for i, p in enumerate(PAYMENT_METHODS)}
STATUSES = ("paid", "received", "pending", "written_off")
ANOMALY_TYPES = (
    "amount_spike",
    "duplicate_charge",
    "atypical_merchant",
    "unusual_day",
    "small_charge_burst",
    "new_merchant_large",
)
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
    "food": ("meals_entertainment",),
    "meals_entertainment": ("food", "entertainment"),
    "entertainment": ("meals_entertainment",),
    "vehicle": ("vehicle_expenses",),
    "vehicle_expenses": ("vehicle", "fuel"),
    "fuel": ("vehicle_expenses",),
    "office_supplies": ("supplies",),
    "supplies": ("office_supplies",),
    "hardware": ("computer_equipment",),
    "computer_equipment": ("hardware",),
    "maintenance": ("repairs",),
    "repairs": ("maintenance",),
    "software": ("computer_equipment", "training"),
    "telephone": ("software",),
    "travel": ("vehicle_expenses",),
    "training": ("professional_fees",),
    "professional_fees": ("other",),
    "other": ("supplies",),
    "home_office": ("office_supplies", "furniture"),
    "furniture": ("home_office",),
    "rent": ("home_office",),
    "bad_debts": ("other",),
}

# Heavy tails: (share of rows with a Pareto multiplier, alpha).
_TAILS = {
    "computer_equipment": (0.10, 1.5),
    "rent": (0.15, 1.2),
    "furniture": (0.08, 1.6),
    "travel": (0.05, 1.8),
    "professional_fees": (0.06, 1.7),
    "repairs": (0.06, 1.8),
    "hardware": (0.05, 1.8),
    "training": (0.04, 2.0),
}

_LOCAL = ("OAKLAND CA", "SAN FRANCISCO CA", "BERKELEY CA", "EMERYVILLE CA", "ALAMEDA CA", "SAN LEANDRO CA")
_TRAVEL = ("NEW YORK NY", "CHICAGO IL", "AUSTIN TX", "SEATTLE WA", "DENVER CO", "LOS ANGELES CA", "BOSTON MA")

# ---------------------------------------------------------------------------------------------------
# Merchants: key -> (Reference name, templates [(pattern, weight[, payment method])], options)
# Placeholders: {store} {city} {mmdd} {ref4} {ref6} {ref8} {num4} {num6}
# ---------------------------------------------------------------------------------------------------
_CHECK = ("CHECK {num4}", 1, "check")

_MERCHANTS: dict[str, tuple] = {
    "amazon": (
        "Amazon",
        [
            ("AMZN MKTP US*{ref6}", 5),
            ("AMAZON.COM*{ref6} AMZN.COM/BILL WA", 3),
            ("Amazon.com", 2),
            ("AMAZON MKTPL*{ref6}", 2),
            ("AMZN Mktp US", 1),
        ],
        {},
    ),
    "costco": (
        "Costco",
        [("COSTCO WHSE #{store}", 5), ("COSTCO WHOLESALE {store} {city}", 2), ("Costco", 1)],
        {"stores": 3},
    ),
    "walmart": (
        "Walmart",
        [("WAL-MART #{store}", 3), ("WM SUPERCENTER #{store}", 3), ("WALMART.COM {ref6}", 1), ("Walmart", 1)],
        {"stores": 3},
    ),
    "target": (
        "Target",
        [("TARGET {store} {city}", 4), ("TARGET.COM *{ref6}", 1), ("Target", 1)],
        {"stores": 3, "digits": 8},
    ),
    "home_depot": (
        "The Home Depot",
        [("THE HOME DEPOT #{store}", 4), ("HOME DEPOT {store} {city}", 2), ("HOMEDEPOT.COM {ref6}", 1)],
        {"stores": 2},
    ),
    "best_buy": (
        "Best Buy",
        [("BEST BUY {store}", 3), ("BESTBUY.COM {ref8}", 2), ("BEST BUY #{store} {city}", 2)],
        {"stores": 2},
    ),
    "starbucks": (
        "Starbucks",
        [("STARBUCKS STORE {store}", 4), ("STARBUCKS {store} {city}", 2), ("Starbucks", 1)],
        {"stores": 4, "digits": 5},
    ),
    "blue_bottle": (
        "Blue Bottle Coffee",
        [
            ("SQ *BLUE BOTTLE COFFEE {store} {city}", 4),
            ("SQ *BLUE BOTTLE COFF", 2),
            ("BLUE BOTTLE COFFEE", 1),
        ],
        {"stores": 2},
    ),
    "shell": (
        "Shell",
        [
            ("SHELL OIL {store} {city}", 4),
            ("POS PURCHASE SHELL {store} {mmdd}", 2),
            ("SHELL SERVICE STATION", 1),
        ],
        {"stores": 3},
    ),
    "chevron": (
        "Chevron",
        [("CHEVRON {store} {city}", 4), ("CHEVRON {store}", 2), ("POS PURCHASE CHEVRON {store} {mmdd}", 1)],
        {"stores": 3, "digits": 6},
    ),
    "arco": ("ARCO", [("ARCO #{store}", 3), ("ARCO AMPM {store} {city}", 2)], {"stores": 2, "digits": 5}),
    "union76": ("76", [("76 - {store} {city}", 3), ("UNION 76 {store}", 1)], {"stores": 2}),
    "adobe": (
        "Adobe",
        [
            ("ADOBE *CREATIVE CLD", 4),
            ("ADOBE *ADOBE  408-536-6000 CA", 2),
            ("Adobe Systems", 1),
            ("ADOBE  *CREATIVE CLOUD 800-833-6687 CA", 1),
        ],
        {},
    ),
    "microsoft": (
        "Microsoft",
        [("MSFT *E0400{num6}", 3), ("MICROSOFT*MICROSOFT 365 B", 2), ("Microsoft 365", 1)],
        {},
    ),
    "slack": ("Slack", [("SLACK T0{ref6}", 3), ("SLACK TECHNOLOGIES", 2), ("Slack", 1)], {}),
    "github": ("GitHub", [("GITHUB, INC.", 3), ("GITHUB *{ref6}", 1), ("GitHub", 1)], {}),
    "zoom": ("Zoom", [("ZOOM.US 888-799-9666", 3), ("ZOOM.US", 2), ("Zoom Video Communications", 1)], {}),
    "dropbox": ("Dropbox", [("DROPBOX*{ref6}", 3), ("Dropbox", 1)], {}),
    "aws": (
        "Amazon Web Services",
        [("AMAZON WEB SERVICES", 2), ("Amazon web services aws.amazon.coWA", 1)],
        {},
    ),
    "gworkspace": ("Google Workspace", [("GOOGLE *GSUITE_{ref6}", 2), ("GOOGLE*WORKSPACE", 1)], {}),
    "notion": ("Notion", [("NOTION LABS, INC.", 2), ("NOTION.SO", 1)], {}),
    "jetbrains": ("JetBrains", [("JETBRAINS S.R.O.", 1), ("JETBRAINS AMERICAS", 1)], {}),
    "gcloud": ("Google Cloud", [("GOOGLE *CLOUD {ref6}", 3), ("GOOGLE*CLOUD", 1)], {}),
    "namecheap": ("Namecheap", [("PAYPAL *NAMECHEAP", 2, "paypal"), ("NAMECHEAP.COM", 1)], {}),
    "apple": (
        "Apple",
        [("APPLE.COM/BILL 866-712-7753 CA", 3), ("APPLE.COM/BILL", 2), ("Apple Services", 1)],
        {},
    ),
    "apple_store": (
        "Apple Store",
        [("APPLE STORE #R{store} {city}", 3), ("APPLE ONLINE STORE", 2), ("Apple Store", 1)],
        {"stores": 2, "digits": 3},
    ),
    "bh": ("B&H Photo", [("B&H PHOTO 800-606-6969", 2), ("BH PHOTO VIDEO", 1)], {}),
    "dell": ("Dell", [("DELL SALES & SERVICE", 2), ("DELL MARKETING L.P.", 1)], {}),
    "newegg": ("Newegg", [("NEWEGG INC", 2), ("NEWEGG MARKETPLACE {ref6}", 1)], {}),
    "microcenter": (
        "Micro Center",
        [("MICRO CENTER #{store} {city}", 2), ("MICRO CENTER", 1)],
        {"stores": 1, "digits": 3},
    ),
    "staples": (
        "Staples",
        [("STAPLES {store}", 3), ("STAPLES DIRECT", 1), ("Staples Inc", 1)],
        {"stores": 2, "digits": 7},
    ),
    "office_depot": (
        "Office Depot",
        [("OFFICE DEPOT #{store}", 3), ("OFFICEMAX/OFFICE DEPOT {store}", 2)],
        {"stores": 2},
    ),
    "uline": ("ULINE", [("ULINE *SHIP SUPPLIES", 2), ("ULINE  800-295-5510 WI", 1)], {"weekday_only": True}),
    "usps": (
        "USPS",
        [("USPS PO {store} {city}", 2), ("USPS.COM CLICKNSHIP", 2)],
        {"stores": 2, "digits": 10},
    ),
    "fedex": ("FedEx", [("FEDEX {ref8}", 2), ("FEDEX OFFIC{store}", 1)], {"stores": 1}),
    "paypal": ("PayPal", [("PAYPAL *{ref6}", 2, "paypal"), ("PAYPAL INST XFER", 1, "paypal")], {}),
    "united": ("United Airlines", [("UNITED 0162{num6}", 3), ("UNITED AIRLINES", 1)], {}),
    "delta": ("Delta Air Lines", [("DELTA AIR 006{num6}", 3), ("DELTA AIR LINES ATLANTA", 1)], {}),
    "southwest": ("Southwest Airlines", [("SOUTHWES 526{num6}", 2), ("SOUTHWEST AIRLINES", 1)], {}),
    "marriott": (
        "Marriott",
        [("MARRIOTT {city}", 2), ("COURTYARD BY MARRIOTT {city}", 2), ("Marriott Hotels", 1)],
        {"stores": 4, "cities": _TRAVEL},
    ),
    "hilton": (
        "Hilton",
        [("HILTON GARDEN INN {city}", 2), ("HAMPTON INN {city}", 1)],
        {"stores": 4, "cities": _TRAVEL},
    ),
    "airbnb": ("Airbnb", [("AIRBNB * HM{ref8}", 3), ("AIRBNB HMAB{ref6}", 1)], {}),
    "uber": (
        "Uber",
        [("UBER *TRIP", 3), ("UBER *TRIP HELP.UBER.COM", 2), ("Uber Trip", 1), ("UBER   *TRIP {ref6}", 1)],
        {},
    ),
    "lyft": ("Lyft", [("LYFT   *RIDE {ref6}", 2), ("LYFT *RIDE", 2)], {}),
    "hertz": (
        "Hertz",
        [("HERTZ RENT-A-CAR {city}", 2), ("HERTZ #{store}", 1)],
        {"stores": 3, "cities": _TRAVEL},
    ),
    "chipotle": ("Chipotle", [("CHIPOTLE {store}", 3), ("CHIPOTLE ONLINE", 1)], {"stores": 2}),
    "doordash": ("DoorDash", [("DD *DOORDASH {ref6}", 3), ("DoorDash", 1)], {}),
    "ubereats": ("Uber Eats", [("UBER *EATS", 3), ("UBER EATS {ref6}", 1)], {}),
    "nopa": ("Nopa", [("TST* NOPA", 2), ("TST* NOPA SAN FRANCISCO", 2)], {}),
    "cheesecake": (
        "The Cheesecake Factory",
        [("CHEESECAKE {store}", 2), ("THE CHEESECAKE FACTORY {city}", 1)],
        {"stores": 1},
    ),
    "tacos": ("Tacos El Gordo", [("SQ *TACOS EL GORDO", 2), ("SQ *TACOS EL GORDO {city}", 1)], {"stores": 1}),
    "safeway": (
        "Safeway",
        [("SAFEWAY #{store}", 4), ("SAFEWAY {store} {city}", 1), ("Safeway", 1)],
        {"stores": 2},
    ),
    "trader_joes": (
        "Trader Joe's",
        [("TRADER JOE S #{store}", 4), ("TRADER JOE'S #{store} {city}", 1)],
        {"stores": 2, "digits": 3},
    ),
    "whole_foods": (
        "Whole Foods",
        [("WHOLEFDS OAK {store}", 3), ("WHOLE FOODS MARKET", 1)],
        {"stores": 2, "digits": 5},
    ),
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
    "bank_fee": (
        "First Bay Bank",
        [("MONTHLY SERVICE FEE", 3), ("SERVICE CHARGE", 1)],
        {"weekday_only": True},
    ),
    "wire_fee": (
        "First Bay Bank",
        [("WIRE TRANSFER FEE", 2), ("OUTGOING WIRE FEE", 1)],
        {"weekday_only": True},
    ),
    "atm": (
        "Cash withdrawal",
        [("ATM WITHDRAWAL {store} {city}", 2, "cash"), ("NON-BANK ATM {city}", 1, "cash")],
        {"stores": 3},
    ),
    "pge": (
        "PG&E",
        [("PGANDE WEB ONLINE", 2), ("PG&E/EZ-PAY {num6}", 2), ("PACIFIC GAS & ELECTRIC", 1)],
        {"weekday_only": True},
    ),
    "verizon": (
        "Verizon Wireless",
        [("VZWRLSS*APOCC VISN", 2), ("VERIZON WIRELESS PAYMENTS", 2), ("VZ WIRELESS VE {num6}", 1)],
        {"weekday_only": True},
    ),
    "comcast": (
        "Comcast Business",
        [("COMCAST BUSINESS 800-391-3000", 2), ("COMCAST CABLE COMM", 1)],
        {"weekday_only": True},
    ),
    "ringcentral": ("RingCentral", [("RINGCENTRAL INC", 2), ("RINGCENTRAL {num6}", 1)], {}),
    "att": ("AT&T", [("AT&T*BILL PAYMENT", 2), ("ATT*BILL PAYMENT {num6}", 1)], {"weekday_only": True}),
    "landlord": (
        "Oakwood Properties LLC",
        [
            ("ONLINE TRANSFER TO OAKWOOD PROPERTIES REF #IB{ref8}", 3, "bank_transfer"),
            _CHECK,
            ("OAKWOOD PROPERTIES RENT", 1, "ach"),
        ],
        {"weekday_only": True},
    ),
    "storage": (
        "Public Storage",
        [("PUBLIC STORAGE {store}", 2), ("PUBLIC STORAGE", 1)],
        {"stores": 1, "digits": 5},
    ),
    "wework": ("WeWork", [("WEWORK {ref6}", 2), ("WeWork Day Pass", 1)], {}),
    "peerspace": ("Peerspace", [("PEERSPACE *{ref6}", 1)], {}),
    "sunbelt": ("Sunbelt Rentals", [("SUNBELT RENTALS #{store}", 1)], {"stores": 1, "weekday_only": True}),
    "rivera": (
        "J. Rivera (contractor)",
        [
            ("ONLINE TRANSFER TO RIVERA J CONTRACTOR REF #IB{ref8}", 2, "bank_transfer"),
            ("GUSTO DES:NET PMTS ID:{ref6} INDN:RIVERA J", 2, "ach"),
        ],
        {"weekday_only": True},
    ),
    "chen": (
        "M. Chen (contractor)",
        [
            ("ONLINE TRANSFER TO CHEN M REF #IB{ref8}", 2, "bank_transfer"),
            ("GUSTO DES:NET PMTS ID:{ref6} INDN:CHEN M", 2, "ach"),
        ],
        {"weekday_only": True},
    ),
    "cpa": ("Smith & Co CPA", [("SMITH & CO CPA", 2, "ach"), _CHECK], {"weekday_only": True}),
    "lawyer": ("Hale Law Group", [("HALE LAW GROUP LLP", 1, "ach"), _CHECK], {"weekday_only": True}),
    "legalzoom": ("LegalZoom", [("LEGALZOOM*{ref6}", 1)], {}),
    "cleaning": ("Sparkle Cleaning Co", [("SPARKLE CLEANING CO", 2, "ach"), _CHECK], {"weekday_only": True}),
    "orkin": ("Orkin", [("ORKIN #{store}", 1, "ach")], {"stores": 1, "weekday_only": True}),
    "hvac": ("Bay Air HVAC", [("BAY AIR HVAC INC", 1, "ach"), _CHECK], {"weekday_only": True}),
    "handyman": ("Mr. Handyman", [("MR HANDYMAN OF OAKLAND", 1, "ach"), _CHECK], {"weekday_only": True}),
    "ace": (
        "Ace Hardware",
        [("ACE HDWE {store}", 2), ("ACE HARDWARE {city}", 1)],
        {"stores": 2, "digits": 5},
    ),
    "ifixit": ("iFixit", [("IFIXIT", 1), ("IFIXIT.COM {ref6}", 1)], {}),
    "toyota_fin": (
        "Toyota Financial Services",
        [("TOYOTA ACH LEASE {num6}", 1, "ach"), ("TFS PAYMENT {num6}", 1, "ach")],
        {"weekday_only": True},
    ),
    "toyota_svc": (
        "Toyota of Oakland",
        [("TOYOTA OF OAKLAND SVC", 2), ("TOYOTA OAKLAND {num4}", 1)],
        {"weekday_only": True},
    ),
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
    _tpl = [
        (f"ACH CREDIT {_ach} PAYABLES {{num6}}", _w[0], "ach"),
        ("DEPOSIT - CHECK #{num4}", _w[1], "check"),
        (f"ONLINE TRANSFER FROM {_ach} INV {{num4}}", _w[2], "bank_transfer"),
        ("STRIPE TRANSFER ST-{ref8}", _w[3], "bank_transfer"),
        ("PAYPAL TRANSFER {ref6}", _w[4], "paypal"),
    ]
    _MERCHANTS["client_" + _key] = (_name, [t for t in _tpl if t[1] > 0], {"weekday_only": True})
    _MERCHANTS["baddebt_" + _key] = (
        _name,
        [
            (f"WRITE-OFF INV {{num4}} {_ach}", 2, "bank_transfer"),
            (f"Bad debt - {_name} invoice {{num4}}", 1, "bank_transfer"),
        ],
        {"weekday_only": True},
    )


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
    """Every discretionary entry, in a fixed order (the streams' draws follow it)."""
    return _checking_entries() + _biz_card_entries() + _personal_entries()


def _checking_entries() -> list[_Entry]:
    """Business checking: project invoices (income), write-offs, B2B vendors."""
    E, c = _Entry, "checking"
    return [
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
    ]


def _biz_card_entries() -> list[_Entry]:
    """The business credit card."""
    E, b = _Entry, "biz_card"
    return [
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
    ]


def _personal_entries() -> list[_Entry]:
    """The personal card."""
    E, p = _Entry, "personal"
    return [
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


# Recurring items: (group, category, merchant, kind, params). kind in monthly/biweekly/annual/retainer.
def _recurring_specs() -> list[tuple]:
    """Every recurring item, in a fixed order (the streams' draws follow it)."""
    return _checking_recurring() + _card_recurring()


def _checking_recurring() -> list[tuple]:
    """Business checking: rent, payroll, bills, fees and retainer income."""
    c = "checking"
    return [
        (
            c,
            "rent",
            "landlord",
            "monthly",
            {"day": 1, "amount": 3200.00, "post": "business", "late": 0.12, "raise_": (0.03, 0.05)},
        ),
        (
            c,
            "rent",
            "storage",
            "monthly",
            {"day": 6, "amount": 89.00, "post": "exact", "change": (0.7, 0.08, 0.15), "pm": "ach"},
        ),
        (c, "professional_fees", "rivera", "biweekly", {"rate": 55.0, "hours": (76, 6)}),
        (c, "professional_fees", "chen", "biweekly", {"rate": 48.0, "hours": (60, 8)}),
        (
            c,
            "professional_fees",
            "cpa",
            "monthly",
            {"day": 20, "amount": 350.00, "post": "business", "change": (0.6, 0.05, 0.1)},
        ),
        (
            c,
            "telephone",
            "verizon",
            "monthly",
            {"day": 24, "amount": 96.40, "post": "business", "jitter": 3.0, "overage": 0.1, "pm": "ach"},
        ),
        (
            c,
            "telephone",
            "comcast",
            "monthly",
            {"day": 17, "amount": 129.99, "post": "business", "change": (0.7, 0.05, 0.1), "pm": "ach"},
        ),
        (
            c,
            "home_office",
            "pge",
            "monthly",
            {"day": 10, "amount": 140.0, "post": "business", "seasonal": 0.35, "noise": 0.08, "pm": "ach"},
        ),
        (c, "vehicle", "toyota_fin", "monthly", {"day": 15, "amount": 389.27, "post": "business"}),
        (
            c,
            "vehicle",
            "geico",
            "monthly",
            {"day": 28, "amount": 142.30, "post": "exact", "change": (0.8, 0.04, 0.09), "pm": "ach"},
        ),
        (c, "vehicle", "dmv", "annual", {"amount": 287.0, "post": "business", "pm": "debit_card"}),
        (
            c,
            "other",
            "bank_fee",
            "monthly",
            {"day": 31, "amount": 15.00, "post": "business_before", "pm": "bank_transfer"},
        ),
        (
            c,
            "maintenance",
            "cleaning",
            "monthly",
            {"day": 5, "amount": 180.00, "post": "business", "change": (0.5, 0.05, 0.1)},
        ),
        (c, None, "client_acme", "retainer", {"amount": 4500.00, "net": 30, "change": (0.6, 0.05, 0.12)}),
        (c, None, "client_northwind", "retainer", {"amount": 2750.00, "net": 15, "change": (0.4, 0.05, 0.1)}),
    ]


def _card_recurring() -> list[tuple]:
    """Subscriptions on the two cards."""
    b, p = "biz_card", "personal"
    return [
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
        lines = [
            (
                f"Generated {self.total_rows:,} rows from {self.start_date} to {self.end_date} "
                f"({self.years:.2f} years) in {self.out_dir}"
            )
        ]
        for name, n in self.rows.items():
            lines.append(f"  {name:<28} {n:>10,} rows  {self.invalid_rows[name]:>6,} invalid")
        lines.append(
            f"  anomalies: {self.total_anomalies:,} ("
            + ", ".join(f"{k} {v}" for k, v in self.anomalies.items() if v)
            + ")"
        )
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

    fixed = [
        dt.date(year, 1, 1),
        dt.date(year, 6, 19),
        dt.date(year, 7, 4),
        dt.date(year, 11, 11),
        dt.date(year, 12, 25),
    ]
    return sorted(
        [observed(d) for d in fixed]
        + [nth(1, 0, 3), nth(2, 0, 3), last(5, 0), nth(9, 0, 1), nth(10, 0, 2), nth(11, 3, 4)]
    )


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
                self.vacation[max(a, 0) : max(min(a + length, n_days), 0)] = True
        # Business trips: ~0.9/month, 2-4 days, starting on a working day outside vacations.
        self.trip = np.zeros(n_days, dtype=bool)
        self.booking = np.zeros(n_days, dtype=bool)
        self.vac_booking = np.zeros(n_days, dtype=bool)
        cand = np.flatnonzero(self.business & ~self.vacation)
        n_trips = int(rng.poisson(0.9 * n_days / 30.44))
        if len(cand) and n_trips:
            for s in np.sort(rng.choice(cand, size=min(n_trips, len(cand)), replace=False)):
                self.trip[s : s + int(rng.integers(2, 5))] = True
                self.booking[max(s - 30, 0) : max(s - 7, 0)] = True
        for s in np.flatnonzero(self.vacation & ~np.r_[False, self.vacation[:-1]]):
            self.vac_booking[max(s - 60, 0) : max(s - 21, 0)] = True
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
            w = (
                w
                * np.where(month == 12, 1.3, 1.0)
                * np.where((month == 12) & (dom >= 20) & (dom <= 24), 1.5, 1.0)
            )
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
            nums = rng.integers(10 ** (digits - 1) // 10, 10**digits, size=n_stores)
            self.stores.append(np.array([str(x).zfill(digits) for x in nums], dtype=object))
            self.cities.append(
                np.array(
                    [pool[i] for i in rng.choice(len(pool), size=n_stores, replace=n_stores > len(pool))],
                    dtype=object,
                )
            )
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
_COLS = (
    "acct",
    "day",
    "cents",
    "cat",
    "pm",
    "status",
    "merch",
    "tmpl",
    "token",
    "disc",
    "anom",
    "override",
    "xfer",
)
_DTYPES = {
    "acct": np.int16,
    "day": np.int32,
    "cents": np.int64,
    "cat": np.int16,
    "pm": np.int8,
    "status": np.int8,
    "merch": np.int32,
    "tmpl": np.int32,
    "token": np.uint64,
    "disc": bool,
    "anom": np.int8,
    "override": np.int32,
    "xfer": np.int32,
}


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
        "day": np.asarray(day, dtype=np.int32),
        "cents": np.asarray(cents, dtype=np.int64),
        "cat": np.broadcast_to(np.asarray(cat, dtype=np.int16), (k,)).copy(),
        "pm": np.asarray(pm, dtype=np.int8),
        "status": np.broadcast_to(np.asarray(status, dtype=np.int8), (k,)).copy(),
        "merch": np.broadcast_to(np.asarray(merch, dtype=np.int32), (k,)).copy(),
        "tmpl": np.asarray(tmpl, dtype=np.int32),
        "token": np.asarray(token, dtype=np.uint64),
        "disc": np.full(k, disc, dtype=bool),
        "anom": np.zeros(k, dtype=np.int8),
        "override": np.full(k, -1, dtype=np.int32),
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
def _recurring(
    cal: _Calendar, catalog: _Catalog, acct_groups: list[tuple[int, str]], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Fixed-schedule items (rent, payroll, bills, subscriptions, retainer income) for each account."""
    blocks = []
    for acct, group in acct_groups:
        for g, category, mkey, kind, prm in _recurring_specs():
            if g != group:
                continue
            price = _pricing(prm, cal, rng)
            if kind in ("monthly", "retainer"):
                days, amounts = _monthly(kind, prm, price, cal, rng)
            elif kind == "biweekly":
                days, amounts = _biweekly(prm, cal, rng)
            else:
                days, amounts = _annual(prm, price, cal)
            if days:
                blocks.append(
                    _recurring_block(
                        acct, group, category, catalog.index[mkey], prm, days, amounts, catalog, rng
                    )
                )
    return _concat(blocks)


@dataclass(frozen=True)
class _Pricing:
    """A recurring item's price: `base`, then `new_price` from day `change_at` (a one-off change), or
    raised by `lease_bump` every year in `raise_month`; annual items fall on `raise_month`/`anchor_day`."""

    base: float
    change_at: int | None
    new_price: float
    raise_month: int
    anchor_day: int
    lease_bump: float

    def at(self, i: int) -> float:
        return self.new_price if self.change_at is not None and i >= self.change_at else self.base

    def monthly(self, i: int, year: int, month: int, start_year: int) -> float:
        if not self.lease_bump:
            return self.at(i)
        years = (year - start_year) + (month >= self.raise_month) - 1
        return max(round(self.base * (1 + self.lease_bump) ** years, 2), self.base)


def _pricing(prm: dict, cal: _Calendar, rng: np.random.Generator) -> _Pricing:
    base = prm.get("amount", 0.0)
    change = prm.get("change")
    change_at = None
    if change and rng.random() < change[0]:
        change_at = int(rng.integers(1, max(cal.n, 2)))
    new_price = _bump(base, rng.uniform(change[1], change[2])) if change else base
    raise_month = int(rng.integers(1, 13))
    anchor_day = int(rng.integers(1, 29))
    lease_bump = rng.uniform(*prm["raise_"]) if "raise_" in prm else 0.0
    return _Pricing(base, change_at, new_price, raise_month, anchor_day, lease_bump)


def _monthly(
    kind: str, prm: dict, price: _Pricing, cal: _Calendar, rng: np.random.Generator
) -> tuple[list[int], list[float]]:
    """A bill on its day of every month, or a retainer's invoice paid about `net` days after it."""
    days: list[int] = []
    amounts: list[float] = []
    for y in range(cal.start.year - 1, cal.end.year + 1):
        for mo in range(1, 13):
            dim = (dt.date(y + (mo == 12), mo % 12 + 1, 1) - dt.timedelta(1)).day
            i = cal.day_index(dt.date(y, mo, min(prm.get("day", 1), dim)))
            amount = price.monthly(i, y, mo, cal.start.year)
            i = _retainer_day(i, prm, cal, rng) if kind == "retainer" else _bill_day(i, prm, cal, rng)
            amount = _bill_amount(amount, prm, mo, rng)
            if 0 <= i < cal.n:
                days.append(i)
                amounts.append(amount)
    return days, amounts


def _retainer_day(i: int, prm: dict, cal: _Calendar, rng: np.random.Generator) -> int:
    i += prm["net"] + _lateness(rng)
    return cal.next_business(i) if 0 <= i < cal.n else i


def _bill_day(i: int, prm: dict, cal: _Calendar, rng: np.random.Generator) -> int:
    """The day a bill posts: sometimes late, on (or before) a business day as the item says."""
    post = prm.get("post", "exact")
    if prm.get("late") and rng.random() < prm["late"]:
        i += int(rng.integers(1, 7))
    if post == "business":
        i = cal.next_business(i) if 0 <= i < cal.n else i
    elif post == "business_before":
        i = cal.prev_business(i) if 0 <= i < cal.n else i
    return i


def _bill_amount(price: float, prm: dict, month: int, rng: np.random.Generator) -> float:
    """The month's amount: the price with the item's jitter and overage, season and noise."""
    amount = price
    if "jitter" in prm:
        amount += rng.normal(0, prm["jitter"]) + (rng.uniform(20, 60) if rng.random() < prm["overage"] else 0)
    if "seasonal" in prm:
        amount *= 1 + prm["seasonal"] * math.cos(2 * math.pi * (month - 1) / 12)
    if "noise" in prm:
        amount *= math.exp(rng.normal(0, prm["noise"]))
    return amount


def _biweekly(prm: dict, cal: _Calendar, rng: np.random.Generator) -> tuple[list[int], list[float]]:
    """Payroll every other Friday (the business day before a holiday Friday), hours varying."""
    days: list[int] = []
    amounts: list[float] = []
    first = (4 - int(cal.dow[0])) % 7 + (7 if rng.random() < 0.5 else 0)
    for i in range(first, cal.n, 14):
        j = i
        while j >= 0 and not cal.business[j]:
            j -= 1  # holiday Friday: paid the day before
        hours = max(round(rng.normal(*prm["hours"]) * 2) / 2, 8)
        if j >= 0:
            days.append(j)
            amounts.append(prm["rate"] * hours)
    return days, amounts


def _annual(prm: dict, price: _Pricing, cal: _Calendar) -> tuple[list[int], list[float]]:
    days: list[int] = []
    amounts: list[float] = []
    for y in range(cal.start.year, cal.end.year + 1):
        i = cal.day_index(dt.date(y, price.raise_month, price.anchor_day))
        if prm.get("post") == "business" and 0 <= i < cal.n:
            i = cal.next_business(i)
        if 0 <= i < cal.n:
            days.append(i)
            amounts.append(price.at(i))
    return days, amounts


def _recurring_block(
    acct: int,
    group: str,
    category: str | None,
    m: int,
    prm: dict,
    days: list[int],
    amounts: list[float],
    catalog: _Catalog,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One item's rows in one account."""
    k = len(days)
    # One descriptor most of the time (a given bank writes a given biller one way), sometimes another.
    main = int(catalog.pick_templates(m, 1, rng)[0])
    tmpl = np.where(rng.random(k) < 0.85, main, catalog.pick_templates(m, k, rng)).astype(np.int32)
    default_pm = _PM[prm.get("pm", _GROUP_PM[group] if category else "ach")]
    if group == "checking" and "pm" not in prm and category:
        default_pm = _PM["ach"]
    cents = _to_cents(np.array(amounts))
    is_income = category is None
    return _block(
        acct,
        np.array(days),
        cents if is_income else -cents,
        -1 if is_income else _CAT[category],
        _pm_for(catalog, tmpl, default_pm),
        1 if is_income else 0,
        m,
        tmpl,
        _tokens(rng, k),
        False,
    )


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


def _discretionary(
    cal: _Calendar,
    catalog: _Catalog,
    acct_groups: list[tuple[int, str]],
    total: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
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
        blocks.append(
            _block(
                acct,
                day,
                cents if income else -cents,
                -1 if income else _CAT[e.category],
                pm,
                status,
                m,
                tmpl,
                _tokens(rng, k),
                True,
            )
        )
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
_NEW_PREFIX = (
    "NOVA",
    "APEX",
    "ZENITH",
    "ORBIT",
    "KESTREL",
    "VANTA",
    "HALCYON",
    "QUARTZ",
    "SABLE",
    "CINDER",
    "TALLOW",
    "MERIDIAN",
    "OBSIDIAN",
    "LUMEN",
    "BRISTLE",
    "FATHOM",
)
_NEW_SUFFIX = (
    "TRADING",
    "ELECTRONICS",
    "CONSULTING",
    "IMPORTS",
    "SUPPLY CO",
    "DIGITAL LLC",
    "HOLDINGS",
    "SOLUTIONS",
    "GLOBAL",
    "OUTLET",
)
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


class _Draw:
    """Rows drawn for anomalies without replacement across the types: a row carries one at most."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.taken = np.zeros(n, dtype=bool)
        self.rng = rng

    def __call__(self, pool: np.ndarray, k: int) -> np.ndarray:
        pool = pool[~self.taken[pool]]
        if len(pool) == 0 or k == 0:
            return pool[:0]
        pick = self.rng.choice(pool, size=min(k, len(pool)), replace=False)
        self.taken[pick] = True
        return pick


_ANOMALY_CODE = {name: i + 1 for i, name in enumerate(ANOMALY_TYPES)}  # the "anom" column (0: none)


def _apply_anomalies(core, plan, cal: _Calendar, catalog: _Catalog, acct_groups, rng, overrides):
    """Mutate or add rows for each planned anomaly; fall back to a new large merchant when no row fits."""
    disc_exp = np.flatnonzero(core["disc"] & (core["cat"] >= 0) & (core["cat"] != _CAT["bad_debts"]))
    draw = _Draw(len(core["day"]), rng)
    need = {name: sum(s for t, s in plan if ANOMALY_TYPES[t] == name) for name in ANOMALY_TYPES}
    # rows the mutating types cannot find become new merchants
    missed = _unusual_days(core, cal, catalog, disc_exp, need["unusual_day"], draw, rng)
    missed += _amount_spikes(core, disc_exp, need["amount_spike"], draw, rng)
    missed += _atypical_merchants(core, catalog, disc_exp, need["atypical_merchant"], draw, rng)
    rows = draw(disc_exp, need["duplicate_charge"])
    missed += need["duplicate_charge"] - len(rows)
    new_rows = [_duplicates(core, rows, cal, catalog, rng)] if len(rows) else []
    card_accts = [a for a, g in acct_groups if g != "checking"] or [a for a, _ in acct_groups]
    bursts = [s for t, s in plan if ANOMALY_TYPES[t] == "small_charge_burst"]
    new_rows += [_burst(s, card_accts, cal, catalog, rng) for s in bursts]
    k = need["new_merchant_large"] + missed
    new_rows += [_new_merchant_large(acct_groups, cal, rng, overrides) for _ in range(k)]
    return _concat([core] + new_rows)


def _unusual_days(core, cal: _Calendar, catalog: _Catalog, disc_exp, k: int, draw: _Draw, rng) -> int:
    """unusual_day: weekday-only merchants (seen at least 5 times in the account) moved to a weekend
    or holiday, in `k` rows. Returns how many it could not find."""
    weekend_days = np.flatnonzero(~cal.business)
    key = core["acct"].astype(np.int64) * len(catalog.keys) + core["merch"]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    regular = counts[inverse] >= 5
    wk_pool = disc_exp[catalog.weekday_only[core["merch"][disc_exp]] & regular[disc_exp]]
    rows = draw(wk_pool, k) if len(weekend_days) else wk_pool[:0]
    for r in rows:
        near = weekend_days[np.abs(weekend_days - core["day"][r]) <= 10]
        core["day"][r] = int(rng.choice(near if len(near) else weekend_days))
        core["anom"][r] = _ANOMALY_CODE["unusual_day"]
    return k - len(rows)


def _amount_spikes(core, disc_exp, k: int, draw: _Draw, rng) -> int:
    """amount_spike: 8-20x the merchant's median (the largest over its categories), in `k` rows.
    Returns how many it could not find."""
    medians = _entry_medians()
    rows = draw(disc_exp, k)
    for r in rows:
        med = medians.get(int(core["merch"][r]), abs(int(core["cents"][r])) / 100)
        core["cents"][r] = -round(med * rng.uniform(8, 20) * 100)
        core["anom"][r] = _ANOMALY_CODE["amount_spike"]
    return k - len(rows)


def _atypical_merchants(core, catalog: _Catalog, disc_exp, k: int, draw: _Draw, rng) -> int:
    """atypical_merchant: a merchant from an unrelated category, the row keeps its category, in `k`
    rows. Returns how many it could not find."""
    rows = draw(disc_exp, k)
    for r in rows:
        c = CATEGORIES[int(core["cat"][r])]
        own = {e.merchant for e in _ENTRY_LIST if e.category == c}
        related = {c, *_NEAR.get(c, ())}
        options = [
            e
            for e in _ENTRY_LIST
            if e.category
            and e.category not in related
            and e.merchant not in own
            and e.category != "bad_debts"
            and not catalog.weekday_only[catalog.index[e.merchant]]
        ]
        e = options[int(rng.integers(len(options)))]
        m = catalog.index[e.merchant]
        core["merch"][r] = m
        core["tmpl"][r] = catalog.pick_templates(m, 1, rng)[0]
        core["cents"][r] = -int(
            _to_cents(np.array([e.median * math.exp(e.sigma * rng.standard_normal())]))[0]
        )
        core["anom"][r] = _ANOMALY_CODE["atypical_merchant"]
    return k - len(rows)


def _duplicates(core, rows, cal: _Calendar, catalog: _Catalog, rng) -> dict[str, np.ndarray]:
    """duplicate_charge: the same purchase again (same text and amount), same or next day."""
    dup = _take(core, rows)
    # Posted the next day 30% of the time, unless the descriptor shows the transaction date.
    shift = (rng.random(len(rows)) < 0.3) & (dup["day"] + 1 < cal.n) & ~catalog.tmpl_has_date[dup["tmpl"]]
    dup["day"] = dup["day"] + shift
    dup["anom"][:] = _ANOMALY_CODE["duplicate_charge"]
    dup["status"][:] = 0
    core["anom"][rows] = -1  # the original: not an anomaly, but kept valid and unchanged
    return dup


def _burst(s: int, card_accts, cal: _Calendar, catalog: _Catalog, rng) -> dict[str, np.ndarray]:
    """small_charge_burst: `s` (2-8) tiny charges at one merchant within a day."""
    m = catalog.index[_BURST_MERCHANTS[int(rng.integers(len(_BURST_MERCHANTS)))]]
    day0 = int(rng.integers(cal.n))
    days = np.minimum(day0 + (rng.random(s) < 0.2), cal.n - 1)
    tmpl = catalog.pick_templates(m, s, rng)
    acct = card_accts[int(rng.integers(len(card_accts)))]
    cents = -rng.integers(50, 500, size=s)
    token = np.repeat(_tokens(rng, 1), s)  # one descriptor for the whole burst, as card testing shows
    b = _block(
        acct, days, cents, _CAT["other"], _pm_for(catalog, tmpl, _PM["credit_card"]), 0, m, tmpl, token, False
    )
    b["anom"][:] = _ANOMALY_CODE["small_charge_burst"]
    return b


def _new_merchant_large(acct_groups, cal: _Calendar, rng, overrides) -> dict[str, np.ndarray]:
    """new_merchant_large: a never-seen merchant with a large amount (its text in `overrides`)."""
    acct, group = acct_groups[int(rng.integers(len(acct_groups)))]
    name = (
        f"{_NEW_PREFIX[int(rng.integers(len(_NEW_PREFIX)))]} "
        f"{_NEW_SUFFIX[int(rng.integers(len(_NEW_SUFFIX)))]} {int(rng.integers(100, 1000))}"
    )
    ref = "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), size=8))
    if group == "checking":
        desc, pm = f"WIRE TRANSFER TO {name} REF {ref}", _PM["bank_transfer"]
    else:
        city = _TRAVEL[int(rng.integers(len(_TRAVEL)))]
        desc, pm = (f"{name} {city}" if rng.random() < 0.6 else f"SQ *{name}"), _PM["credit_card"]
    overrides.append((desc, name.title()))
    day = int(rng.choice(cal.n, p=cal.profile("biz")))
    amount = min(max(rng.lognormal(math.log(6000), 0.5), 2000), 15000)
    category = _CAT[_NEW_CATEGORIES[int(rng.integers(5))]]
    b = _block(acct, [day], [-round(amount * 100)], category, [pm], 0, 0, [0], _tokens(rng, 1), False)
    b["override"][:] = len(overrides) - 1
    b["anom"][:] = _ANOMALY_CODE["new_merchant_large"]
    return b


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
    return np.strings.zfill((x % (10**width)).astype(np.uint64).astype(str), width).astype(object)


def _render_descriptions(
    catalog: _Catalog,
    cal: _Calendar,
    tmpl: np.ndarray,
    token: np.ndarray,
    day: np.ndarray,
    override: np.ndarray,
    overrides: list,
) -> np.ndarray:
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
                which = np.minimum(
                    (u * u * len(catalog.stores[m])).astype(np.int64), len(catalog.stores[m]) - 1
                )
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
_CHECKING, _CARD, _PERSONAL, _SAVINGS = (
    "business_checking",
    "business_credit_card",
    "personal_card",
    "business_savings",
)
_XFER_KINDS = ("card_payment", "owner_draw", "to_savings", "from_savings")
_XFER_NAMES = {
    _CHECKING: "Business Checking",
    _CARD: "Business Credit Card",
    _PERSONAL: "Personal Checking",
    _SAVINGS: "Business Savings",
}
# (out-side descriptors, in-side descriptors): {out4} / {in4} are the last digits of the accounts'
# numbers, {ref} a transfer reference. Some checking-side texts name no account (real ones do not).
_XFER_TEXT = {
    "card_payment": (
        (
            ("ONLINE TRANSFER TO CARD ...{in4}", 4),
            ("CREDIT CRD AUTOPAY PPD ID: {ref}", 3),
            ("TITAN BANK CARD PMT ...{in4} WEB ID {ref}", 2),
            ("ONLINE PAYMENT TO CREDIT CARD {in4}", 1),
        ),
        (
            ("PAYMENT THANK YOU", 4),
            ("AUTOPAY PAYMENT - THANK YOU", 3),
            ("ONLINE PAYMENT - THANK YOU", 2),
            ("MOBILE PAYMENT THANK YOU", 1),
        ),
    ),
    "owner_draw": (
        (("ONLINE TRANSFER TO CHK ...{in4} TRANSACTION#: {ref}", 3), ("OWNER DRAW TO ...{in4}", 1)),
        (("ONLINE TRANSFER FROM CHK ...{out4} TRANSACTION#: {ref}", 3), ("DEPOSIT FROM ...{out4}", 1)),
    ),
    "to_savings": (
        (("TRANSFER TO SAVINGS ...{in4}", 3), ("ONLINE TRANSFER TO SAV ...{in4} REF #{ref}", 1)),
        (("TRANSFER FROM CHECKING ...{out4}", 3), ("ONLINE TRANSFER FROM CHK ...{out4} REF #{ref}", 1)),
    ),
    "from_savings": ((("TRANSFER TO CHECKING ...{in4}", 1),), (("TRANSFER FROM SAVINGS ...{out4}", 1),)),
}


def _last4(name: str) -> str:
    return account_id(name, "ofx")[-4:]


def _transfer_rng(seed: int) -> np.random.Generator:
    """Transfers draw from their own stream, so a run without them (one account, the committed
    fixtures) consumes the main stream exactly as before."""
    return np.random.default_rng(
        int(hashlib.sha256(f"titans-transfers|{seed}".encode()).hexdigest()[:16], 16)
    )


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
                add(
                    "from_savings",
                    sav,
                    chk,
                    d,
                    d + int(rng.choice([0, 1])),
                    amount=int(rng.integers(10, 51)) * 10_000,
                )
    plan.sort(key=lambda p: (p["day_out"], p["kind"], p["out"], p["in"]))
    return plan


def _transfer_rows(
    plan: list[dict],
    core: dict[str, np.ndarray],
    accounts: Sequence[str],
    rng: np.random.Generator,
    overrides: list[tuple[str, str]],
) -> dict[str, np.ndarray]:
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
        fill = {
            "out4": _last4(out_name),
            "in4": _last4(in_name),
            "ref": f"{int(rng.integers(10**9, 10**10))}",
        }
        for _side, texts, acct, day, sign, other in (
            ("out", out_t, p["out"], p["day_out"], -1, in_name),
            ("in", in_t, p["in"], p["day_in"], 1, out_name),
        ):
            w = np.array([t[1] for t in texts], dtype=float)
            text = texts[int(rng.choice(len(texts), p=w / w.sum()))][0].format(**fill)
            overrides.append((text, _XFER_NAMES.get(other, other)))
            b = _block(
                acct,
                [day],
                [sign * cents],
                -1,
                [_PM["bank_transfer"]],
                0 if sign < 0 else 1,
                0,
                [0],
                _tokens(rng, 1),
                False,
            )
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


# The demo lands two CSV layouts: the checking account as a bank's download with a running Balance
# and a Currency column (the `generic` profile: categories kept, and a balance the bank reported on
# every day with activity, which the blocking balance reconciliation checks to the cent), the cards
# as the seed CSV (no balance: theirs run from 0, flagged unknown). A bank statement (OFX, CAMT.053,
# MT940) carries balances too, but no categories: the demo's category model would lose checking's labels.
DEMO_FORMATS = {"business_checking": "csv-profile:generic"}


def generate_demo(
    out_dir: Path, *, rows: int | None = None, labels_dir: Path | None = None
) -> GenerationSummary:
    """The demo's sample ledgers: two years ending on DEMO_END_DATE (or `rows` rows ending then), the
    checking account as a CSV download with balances and the two cards as seed CSV exports (DEMO_FORMATS)."""
    return generate(
        out_dir,
        rows=rows,
        years=None if rows else DEMO_YEARS,
        seed=DEMO_SEED,
        end_date=DEMO_END_DATE,
        labels_dir=labels_dir,
        format=DEMO_FORMATS,
    )


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
    present = {
        p.relative_to(landing_dir).as_posix(): p
        for p in landing_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    }
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
    currencies: Mapping[str, str] | None = None,
    monthly: bool = False,
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
    o = _Options(
        rows=rows,
        years=years,
        accounts=accounts,
        seed=seed,
        anomaly_rate=anomaly_rate,
        messy_rate=messy_rate,
        label_noise=label_noise,
        end=_end(end_date),
        file_quirks=file_quirks,
        format=format,
        formats=file_formats,
        currencies=_account_currencies(currencies, accounts, file_formats),
        monthly=monthly,
    )
    rng = np.random.default_rng(seed)
    n_days = _n_days(rows, years, accounts)
    start = o.end - dt.timedelta(n_days - 1)
    cal = _Calendar(start, n_days, rng)
    catalog = _Catalog(rng)
    overrides: list[tuple[str, str]] = []
    core, xfer_plan = _ledger(cal, catalog, o, rng, overrides)
    _settle(core, cal, rng)
    written_cat, noisy = _label_noise(core, label_noise, rng)
    r = _Render(core, written_cat, noisy, _receipts(core, rng), catalog, cal, overrides, o.end)
    w = _write_files(out_dir, labels_dir, r, o, rng)
    truth_paths, transfer_rows, with_transfers = _write_truth(labels_dir, w, xfer_plan, accounts)
    manifest = _manifest(o, start, n_days, len(core["day"]), w, transfer_rows, with_transfers)
    manifest_path = labels_dir / "manifest.json"
    _atomic_write(manifest_path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return GenerationSummary(
        out_dir=out_dir,
        labels_dir=labels_dir,
        start_date=start,
        end_date=o.end,
        years=round(n_days / 365.25, 4),
        rows={f: w.manifest_files[f]["data_rows"] for f in w.files},
        invalid_rows={f: w.manifest_files[f]["invalid_rows"] for f in w.files},
        anomalies=manifest["anomalies_by_type"],
        label_noise_rows=len(w.noise_rows),
        paths=tuple(w.paths) + truth_paths[:2] + (manifest_path,) + truth_paths[2:],
        manifest=manifest,
        transfer_pairs=len(transfer_rows),
    )


@dataclass(frozen=True)
class _Options:
    """generate's arguments, resolved: the end date, and each account's file format and currency."""

    rows: int | None
    years: float | None
    accounts: tuple[str, ...]
    seed: int
    anomaly_rate: float
    messy_rate: float
    label_noise: float
    end: dt.date
    file_quirks: bool | None
    format: str | Mapping[str, str]
    formats: list[str]
    currencies: list[str]
    monthly: bool


def _end(end_date: dt.date | None) -> dt.date:
    end = end_date if end_date is not None else dt.date.today()
    return end.date() if isinstance(end, dt.datetime) else end


def _n_days(rows: int | None, years: float | None, accounts: Sequence[str]) -> int:
    """The run's length in days: `years`, else two years or as long as `rows` rows take at the base rate."""
    groups = [g for name in accounts for g in ACCOUNTS[name]]
    if years is None:
        years_used = 2.0 if rows is None else min(2.0, rows / _base_rows_per_year(groups))
    else:
        years_used = float(years)
    return max(_MIN_DAYS, round(years_used * 365.25))


def _ledger(cal: _Calendar, catalog: _Catalog, o: _Options, rng: np.random.Generator, overrides: list):
    """Every row of the run (recurring, discretionary, anomalies, transfers) and the transfer plan.

    The number of rows is exact when asked for, else recurring + Poisson(base rate) discretionary."""
    accounts, rows = o.accounts, o.rows
    acct_groups = [(a, g) for a, name in enumerate(accounts) for g in ACCOUNTS[name]]
    rec = _recurring(cal, catalog, acct_groups, rng)
    n_rec = len(rec["day"])
    disc_rate = (
        sum(e.per_month for _, g in acct_groups for e in _ENTRY_LIST if e.group == g) * cal.n / 30.4375
    )
    xfer_plan, xfer_rng = _planned_transfers(cal, accounts, o.currencies, rows, o.seed)
    n_xfer = 2 * len(xfer_plan)
    n_rows = rows if rows is not None else n_rec + int(rng.poisson(disc_rate)) + n_xfer
    plan = _plan_anomalies(n_rows, o.anomaly_rate, rng)
    n_disc = max(n_rows - n_xfer - n_rec - _added_rows(plan), 0)
    disc = _discretionary(cal, catalog, acct_groups, n_disc, rng)
    core = _apply_anomalies(_concat([rec, disc]), plan, cal, catalog, acct_groups, rng, overrides)
    if len(core["day"]) > n_rows - n_xfer:  # tiny runs only (recurring items alone exceed rows)
        core = _keep_newest(core, n_rows - n_xfer, rng)
    _price_in_currencies(core, o.currencies)
    if n_xfer:
        core = _concat([core, _transfer_rows(xfer_plan, core, accounts, xfer_rng, overrides)])
    _check_transfer_only_accounts(core, o)
    return core, xfer_plan


def _check_transfer_only_accounts(core: dict[str, np.ndarray], o: _Options) -> None:
    """An account that only receives transfers (business_savings) and got none: a clear error, not an
    empty statement some writer cannot render."""
    for a, name in enumerate(o.accounts):
        if not ACCOUNTS[name] and not (core["acct"] == a).any():
            raise ValueError(
                f"accounts: {name} only moves money to and from {_CHECKING}, and this run has no such "
                f"transfer: it needs {_CHECKING} among the accounts, in the same currency "
                f"({name} is in {o.currencies[a]}), and rows enough for them (about 2 a month, at most "
                "a tenth of the rows)"
            )


def _planned_transfers(cal, accounts, account_currency, rows, seed) -> tuple[list[dict], np.random.Generator]:
    """Transfers between the accounts (own stream: see _transfer_rng), none across currencies and none
    in a tiny sample (no room for them); both sides count in the rows."""
    xfer_rng = _transfer_rng(seed)
    xfer_plan = [
        p
        for p in _transfer_plan(cal, accounts, xfer_rng)
        if account_currency[p["out"]] == account_currency[p["in"]]
    ]
    if rows is not None and 2 * len(xfer_plan) > rows // 10:
        xfer_plan = []
    return xfer_plan, xfer_rng


def _keep_newest(core: dict[str, np.ndarray], k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    keep = np.sort(np.lexsort((rng.random(len(core["day"])), -core["day"].astype(np.int64)))[:k])
    return _take(core, keep)


def _price_in_currencies(core: dict[str, np.ndarray], account_currency: Sequence[str]) -> None:
    """The same purchases, priced in each account's currency."""
    for a, cur in enumerate(account_currency):
        if cur != "USD":
            sel = core["acct"] == a
            priced = np.rint(core["cents"][sel] / NOMINAL_RATES[cur]).astype(np.int64)
            core["cents"][sel] = np.where(priced == 0, np.sign(core["cents"][sel]), priced)


def _settle(core: dict[str, np.ndarray], cal: _Calendar, rng: np.random.Generator) -> None:
    """Pending: the last days of card and ACH activity have not settled yet."""
    recent = core["day"] >= cal.n - 3
    pending = recent & (rng.random(len(core["day"])) < 0.5) & (core["status"] != 3)
    core["status"][pending] = 2


def _label_noise(core, label_noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The written categories: a near-duplicate category on a fraction of expense rows (never on
    anomalies), and which rows got one."""
    written_cat = core["cat"].copy()
    noisy = np.zeros(len(core["day"]), dtype=bool)
    pool = np.flatnonzero((core["cat"] >= 0) & (core["anom"] == 0))
    k = min(round(label_noise * int((core["cat"] >= 0).sum())), len(pool))
    if k:
        pick = rng.choice(pool, size=k, replace=False)
        for c in np.unique(core["cat"][pick]):
            sel = pick[core["cat"][pick] == c]
            near = _NEAR[CATEGORIES[c]]
            written_cat[sel] = np.array([_CAT[x] for x in near], dtype=np.int16)[
                rng.integers(len(near), size=len(sel))
            ]
        noisy[pick] = True
    return written_cat, noisy


def _receipts(core, rng: np.random.Generator) -> np.ndarray:
    """Receipts: likelier for larger purchases, subscriptions and invoices."""
    amt = np.abs(core["cents"])
    p_receipt = np.where(core["cat"] < 0, 0.5, np.where(amt >= 2500, 0.6, 0.15))
    p_receipt = np.where(~core["disc"] & (core["cat"] == _CAT["software"]), 0.9, p_receipt)
    return (rng.random(len(core["day"])) < p_receipt) & (core["xfer"] < 0)


@dataclass(frozen=True)
class _Render:
    """The run's rows and what rendering any of its files needs."""

    core: dict[str, np.ndarray]
    written_cat: np.ndarray
    noisy: np.ndarray
    receipt: np.ndarray
    catalog: _Catalog
    cal: _Calendar
    overrides: list[tuple[str, str]]
    end: dt.date


@dataclass
class _Written:
    """What writing the files collects: ground-truth rows, where each transfer side landed, the
    manifest's file entries and the paths."""

    anomaly_rows: list[tuple] = field(default_factory=list)
    noise_rows: list[tuple] = field(default_factory=list)
    xfer_sides: dict[tuple[int, str], tuple] = field(default_factory=dict)
    manifest_files: dict[str, dict] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


_QUIRKS = ("messy_header", "extra_column", "crlf", "no_trailing_newline")


def _write_files(
    out_dir: Path, labels_dir: Path, r: _Render, o: _Options, rng: np.random.Generator
) -> _Written:
    """Every account's file(s): quirks, ordering (newest first), messy and invalid rows."""
    accounts = o.accounts
    quirk_rng = [rng.random(4) for _ in accounts]
    guaranteed = [int(rng.integers(len(accounts))) for _ in range(4)]
    with_quirks = o.messy_rate > 0 if o.file_quirks is None else bool(o.file_quirks)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    w = _Written()
    for a, name in enumerate(accounts):
        idx = np.flatnonzero(r.core["acct"] == a)
        idx = idx[np.lexsort((rng.random(len(idx)), -r.core["day"][idx].astype(np.int64)))]
        quirks = {
            q: bool(with_quirks and (guaranteed[j] == a or quirk_rng[a][j] < 0.25))
            for j, q in enumerate(_QUIRKS)
        }
        kinds, invalid, n_bad = _messy_rows(r, idx, o.messy_rate, rng)
        fmt = o.formats[a]
        if fmt != "csv":  # a bank's statement: no CSV formatting to be messy about, no invalid rows
            quirks = dict.fromkeys(quirks, False)
            kinds[:] = -1
            invalid[:] = -1
            n_bad = 0
        opening = _OPENING_CENTS.get(name, 0)
        for fname, part, ym in _file_parts(name, fmt, idx, r, o.monthly):
            path = out_dir / fname
            if fmt == "csv":
                info = _write_file(path, r, part, kinds, invalid, quirks, fname, w)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                sid = None if ym is None else f"TF{ym.replace('-', '')}{a:02d}"
                cur = o.currencies[a]
                info = _write_statement(path, fmt, a, name, r, part, fname, w, cur, opening, sid)
                opening = info["closing_cents"]
            w.paths.append(path)
            _record_transfer_sides(r, part, info, fname, name, w)
            w.manifest_files[fname] = _file_manifest(
                fmt, name, o.currencies[a], info, r, part, kinds, n_bad, quirks
            )
            w.files.append(fname)
    return w


def _messy_rows(r: _Render, idx: np.ndarray, messy_rate: float, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """Per row of a file (in file order): its messy kind and its invalid reason (-1: none), and the
    number of invalid rows (a share of the messy ones, never an anomaly, a noisy row or a transfer)."""
    core = r.core
    m = len(idx)
    n_messy = round(messy_rate * m)
    messy_pos = (
        np.sort(rng.choice(m, size=min(n_messy, m), replace=False)) if n_messy else np.empty(0, np.int64)
    )
    kinds = np.full(m, -1, dtype=np.int8)
    kinds[messy_pos] = rng.integers(len(MESSY_KINDS), size=len(messy_pos))
    bad_ok = messy_pos[
        (core["anom"][idx[messy_pos]] == 0) & ~r.noisy[idx[messy_pos]] & (core["xfer"][idx[messy_pos]] < 0)
    ]
    n_bad = min(round(INVALID_SHARE * n_messy), len(bad_ok))
    bad_pos = np.sort(rng.choice(bad_ok, size=n_bad, replace=False)) if n_bad else np.empty(0, np.int64)
    invalid = np.full(m, -1, dtype=np.int8)
    invalid[bad_pos] = rng.integers(len(INVALID_REASONS), size=n_bad)
    kinds[bad_pos] = -1
    return kinds, invalid, n_bad


def _file_parts(name: str, fmt: str, idx: np.ndarray, r: _Render, monthly: bool) -> list[tuple]:
    """[(file name, rows, statement month or None)]: one file per account, or with `monthly` one
    statement per calendar month in the account's folder, oldest first (never for CSV)."""
    if fmt == "csv" or not monthly:
        return [(f"{name}{_EXTENSIONS[fmt]}", idx, None)]
    month = r.cal.iso[r.core["day"][idx]].astype("U7")
    return [(f"{name}/{ym}{_EXTENSIONS[fmt]}", idx[month == ym], ym) for ym in sorted(set(month.tolist()))]


def _record_transfer_sides(
    r: _Render, part: np.ndarray, info: dict, fname: str, name: str, w: _Written
) -> None:
    """Where each transfer side in `part` landed: (file, line, date, account) by (pair, out/in)."""
    core = r.core
    for j in np.flatnonzero(core["xfer"][part] >= 0):
        i = part[j]
        w.xfer_sides[(int(core["xfer"][i]), "out" if core["cents"][i] < 0 else "in")] = (
            fname,
            int(info["lines"][j]),
            r.cal.iso[core["day"][i]],
            name,
        )


def _csv_header(quirks: Mapping[str, bool]) -> list[str]:
    return list(MESSY_HEADER if quirks["messy_header"] else HEADER) + (
        [EXTRA_COLUMN] if quirks["extra_column"] else []
    )


def _file_manifest(fmt, name, currency, info, r: _Render, part, kinds, n_bad, quirks) -> dict:
    """The manifest's entry for one file (CSV entries keep the keys they had: the committed fixtures' bytes)."""
    k = len(part)
    statement = fmt != "csv"
    return {
        **({"format": fmt, "account_id": info["account_id"]} if statement else {}),
        **({"currency": currency} if currency != "USD" else {}),
        "account": name,
        "data_rows": k,
        "valid_rows": k - n_bad,
        "invalid_rows": n_bad,
        "messy_valid_rows": int((kinds >= 0).sum()),
        "anomaly_rows": int((r.core["anom"][part] > 0).sum()),
        "label_noise_rows": int(r.noisy[part].sum()),
        "header": [] if statement else _csv_header(quirks),
        "extra_columns": [EXTRA_COLUMN] if quirks["extra_column"] else [],
        "line_terminator": "\r\n" if quirks["crlf"] else "\n",
        "trailing_newline": not quirks["no_trailing_newline"],
        "first_date": info["first"],
        "last_date": info["last"],
        "sha256": info["sha256"],
        "invalid": info["invalid"],
        **(
            {
                "opening_balance": _format_amounts(np.array([info["opening_cents"]]))[0],
                "closing_balance": _format_amounts(np.array([info["closing_cents"]]))[0],
            }
            if statement
            else {}
        ),
    }


_TRANSFER_HEADER = (
    "pair_id",
    "kind",
    "amount",
    "out_account",
    "out_file",
    "out_line",
    "out_date",
    "in_account",
    "in_file",
    "in_line",
    "in_date",
)


def _write_truth(
    labels_dir: Path, w: _Written, xfer_plan: list[dict], accounts: Sequence[str]
) -> tuple[tuple[Path, ...], list[tuple], bool]:
    """anomalies.csv, label_noise.csv and transfers.csv (only where the accounts allow any transfer, so
    one-account runs and the committed fixtures write exactly what they did): (paths, transfer rows,
    whether transfers.csv was written)."""
    anomalies_path = labels_dir / "anomalies.csv"
    w.anomaly_rows.sort(key=lambda row: (row[0], row[1]))
    header = ("file", "line_number", "date", "description", "amount", "anomaly_type")
    _atomic_write(anomalies_path, _csv_text(header, w.anomaly_rows))
    noise_path = labels_dir / "label_noise.csv"
    w.noise_rows.sort(key=lambda row: (row[0], row[1]))
    _atomic_write(
        noise_path, _csv_text(("file", "line_number", "true_category", "written_category"), w.noise_rows)
    )
    transfer_rows = []
    for p_i, p in enumerate(xfer_plan):
        o, i = w.xfer_sides[(p_i, "out")], w.xfer_sides[(p_i, "in")]
        amount = _format_amounts(np.array([p["cents"]]))[0]
        transfer_rows.append((p_i + 1, p["kind"], amount, o[3], o[0], o[1], o[2], i[3], i[0], i[1], i[2]))
    with_transfers = _CHECKING in accounts and any(a in accounts for a in (_CARD, _PERSONAL, _SAVINGS))
    if not with_transfers:
        return (anomalies_path, noise_path), transfer_rows, False
    transfers_path = labels_dir / "transfers.csv"
    _atomic_write(transfers_path, _csv_text(_TRANSFER_HEADER, transfer_rows))
    return (anomalies_path, noise_path, transfers_path), transfer_rows, True


def _manifest_args(o: _Options) -> dict:
    return {
        "rows": o.rows,
        "years": o.years,
        "accounts": list(o.accounts),
        "seed": o.seed,
        "anomaly_rate": o.anomaly_rate,
        "messy_rate": o.messy_rate,
        "label_noise": o.label_noise,
        "end_date": o.end.isoformat(),
        "file_quirks": o.file_quirks,
        **(
            {"format": o.format if isinstance(o.format, str) else dict(sorted(o.format.items()))}
            if set(o.formats) != {"csv"}
            else {}
        ),
    }


def _manifest(o: _Options, start, n_days, n, w: _Written, transfer_rows, with_transfers) -> dict:
    """manifest.json: the arguments, the span, every file's entry and the totals."""
    by_type = {t: 0 for t in ANOMALY_TYPES}
    for row in w.anomaly_rows:
        by_type[row[5]] += 1
    by_reason = {reason: 0 for reason in INVALID_REASONS}
    for f in w.manifest_files.values():
        for inv in f["invalid"]:
            by_reason[inv["reason"]] += 1
    invalid_rows = sum(f["invalid_rows"] for f in w.manifest_files.values())
    manifest = {
        "generator": "titans_assets.lib.generator",
        "format_version": 1,
        "args": _manifest_args(o),
        "start_date": start.isoformat(),
        "end_date": o.end.isoformat(),
        "years_used": round(n_days / 365.25, 4),
        "files": w.manifest_files,
        "totals": {
            "data_rows": n,
            "valid_rows": n - invalid_rows,
            "invalid_rows": invalid_rows,
            "anomaly_rows": len(w.anomaly_rows),
            "label_noise_rows": len(w.noise_rows),
        },
        "anomalies_by_type": by_type,
        "invalid_by_reason": by_reason,
        "ground_truth": {"anomalies": "anomalies.csv", "label_noise": "label_noise.csv"},
    }
    if with_transfers:
        manifest["totals"]["transfer_pairs"] = len(transfer_rows)
        manifest["ground_truth"]["transfers"] = "transfers.csv"
    return manifest


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
    for name, v, hi in (
        ("anomaly_rate", anomaly_rate, 0.2),
        ("messy_rate", messy_rate, 0.5),
        ("label_noise", label_noise, 0.5),
    ):
        if not (0 <= v <= hi):
            raise ValueError(f"{name} must be between 0 and {hi}, got {v!r}")
    out_r, lab_r = out_dir.resolve(), labels_dir.resolve()
    if lab_r == out_r or out_r in lab_r.parents:
        raise ValueError(
            f"labels_dir {labels_dir} is inside the landing folder {out_dir}: "
            "ground truth must stay out of the data the pipeline loads"
        )


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


def _write_file(path, r: _Render, idx, kinds, invalid, quirks, fname, w: _Written) -> dict:
    """Write one export in chunks; collect ground-truth rows; return sha256, dates and invalid rows."""
    eol = "\r\n" if quirks["crlf"] else "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    digest = hashlib.sha256()
    invalid_list: list[dict] = []
    m = len(idx)
    with open(tmp, "wb") as fh:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator=eol)
        writer.writerow(_csv_header(quirks))
        for lo in range(0, max(m, 1), _CHUNK):
            sel = idx[lo : lo + _CHUNK]
            if len(sel):
                chunk = slice(lo, lo + len(sel))
                cols = _csv_columns(r, sel, lo, kinds[chunk], invalid[chunk], quirks, fname, w, invalid_list)
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
    days = r.core["day"][idx]
    return {
        "sha256": digest.hexdigest(),
        "invalid": invalid_list,
        "lines": np.arange(m) + 2,
        "first": r.cal.iso[days.min()] if m else None,
        "last": r.cal.iso[days.max()] if m else None,
    }


_CAT_NAMES = np.array(list(CATEGORIES) + [""], dtype=object)  # index -1 -> ""
_PM_NAMES = np.array(PAYMENT_METHODS, dtype=object)
_STATUS_NAMES = np.array(STATUSES, dtype=object)


def _csv_columns(r: _Render, sel, lo, kinds, invalid, quirks, fname, w: _Written, invalid_list) -> list:
    """One chunk of a CSV export as columns: the clean values go to the ground truth, then some cells
    are made messy (still valid) or invalid."""
    core = r.core
    day, cents, tok = core["day"][sel], core["cents"][sel], core["token"][sel]
    date_s = r.cal.iso[day]
    type_s = np.where(cents > 0, "Income", "Expense").astype(object)
    desc = _render_descriptions(
        r.catalog, r.cal, core["tmpl"][sel], tok, day, core["override"][sel], r.overrides
    )
    amount = _format_amounts(cents)
    pm = _PM_NAMES[core["pm"][sel]]
    ref = _references(r, sel)
    lines = np.arange(lo, lo + len(sel)) + 2
    # Ground truth (clean values) before messy formatting.
    _record_truth(r, sel, lines, date_s, desc, amount, fname, w)
    _make_messy(kinds, cents, tok, amount, desc, ref, pm)
    _make_invalid(invalid, tok, lines, date_s, amount, type_s, invalid_list)
    code = _base36(tok >> np.uint64(20), 10)
    url = np.where(r.receipt[sel], "https://receipts.example.com/r/" + code, "").astype(object)
    income = cents > 0
    url = np.where(r.receipt[sel] & income, "https://invoices.example.com/inv/" + code + ".pdf", url)
    category = _CAT_NAMES[r.written_cat[sel]]
    cols = [date_s, type_s, desc, amount, category, pm, _STATUS_NAMES[core["status"][sel]], ref, url]
    if quirks["extra_column"]:
        cols.append(_notes(tok, income))
    return cols


def _references(r: _Render, sel: np.ndarray) -> np.ndarray:
    """The Reference column: the merchant's name, or a new merchant's own."""
    ref = np.array(r.catalog.names, dtype=object)[r.core["merch"][sel]]
    override = r.core["override"][sel]
    for i in np.flatnonzero(override >= 0):
        ref[i] = r.overrides[override[i]][1]
    return ref


def _record_truth(r: _Render, sel, lines, date_s, desc, amount, fname: str, w: _Written) -> None:
    """The anomalies and the label noise among the rows `sel` (at `lines` in the file)."""
    anom = r.core["anom"][sel]
    for i in np.flatnonzero(anom > 0):
        w.anomaly_rows.append(
            (fname, int(lines[i]), date_s[i], desc[i], amount[i], ANOMALY_TYPES[anom[i] - 1])
        )
    true_cat, cat_sel = r.core["cat"][sel], r.written_cat[sel]
    for i in np.flatnonzero(r.noisy[sel]):
        w.noise_rows.append((fname, int(lines[i]), CATEGORIES[true_cat[i]], CATEGORIES[cat_sel[i]]))


def _make_messy(kinds, cents, tok, amount, desc, ref, pm) -> None:
    """Messy but valid cells, in place: currency symbols, thousands separators, whitespace, typos."""
    for i in np.flatnonzero(kinds >= 0):
        kind = MESSY_KINDS[kinds[i]]
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


def _make_invalid(invalid, tok, lines, date_s, amount, type_s, invalid_list: list[dict]) -> None:
    """Invalid cells, in place, each listed (line, reason, value) for the manifest."""
    for i in np.flatnonzero(invalid >= 0):
        reason = INVALID_REASONS[invalid[i]]
        t = int(tok[i])
        if reason == "bad_date":
            value = date_s[i] = (f"{date_s[i][:4]}-13-45", "yesterday", f"{date_s[i][:4]}-02-30")[t % 3]
        elif reason == "missing_amount":
            value = amount[i] = ""
        elif reason == "non_numeric_amount":
            value = amount[i] = ("abc", "TBD", "12.3.4")[t % 3]
        else:
            value = type_s[i] = "Refund"
        invalid_list.append({"line_number": int(lines[i]), "reason": reason, "value": value})


def _notes(tok: np.ndarray, income: np.ndarray) -> np.ndarray:
    """The extra Notes column: invoice numbers on some income, a remark on a few expenses."""
    notes = np.full(len(tok), "", dtype=object)
    num = _digits(tok >> np.uint64(20), 4)
    r = (tok % np.uint64(100)).astype(np.int64)
    notes[income & (r < 30)] = "Invoice " + num[income & (r < 30)] + ", net 30"
    notes[~income & (r < 3)] = "reimbursable, see receipt"
    return notes


# ---------------------------------------------------------------------------------------------------
# Statement formats
# ---------------------------------------------------------------------------------------------------
FORMATS = ("csv", *writers.FORMATS)
_EXTENSIONS = {"csv": ".csv", **writers.EXTENSIONS}
_OPENING_CENTS = {
    "business_checking": 2_500_000,
    "ledger": 2_500_000,
    "personal_card": 1_000_000,
    "business_savings": 1_000_000,
}  # the business card opens at 0.00
_CARD_ACCOUNTS = {"business_credit_card"}


# Nominal USD per unit of each currency the generator prices in (1 EUR = 1.08 USD): the same purchases
# cost amount / rate there. Illustrative, fixed: the user's own rates live in seeds/fx_rates.csv.
NOMINAL_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "CHF": 1.13}
# Formats that state a currency in the file (the seed CSV and QIF do not).
_CURRENCY_FORMATS = ("ofx", "camt053", "mt940", "csv-profile:generic", "csv-profile:debit_credit")


def _account_currencies(
    currencies: Mapping[str, str] | None, accounts: Sequence[str], file_formats: Sequence[str]
) -> list[str]:
    """Each account's currency (default USD); a non-USD account must be in a format that says so."""
    currencies = dict(currencies or {})
    unknown = sorted(set(currencies) - set(accounts))
    if unknown:
        raise ValueError(f"currencies: accounts {', '.join(unknown)} are not generated")
    out = []
    for name, fmt in zip(accounts, file_formats):
        cur = str(currencies.get(name, "USD")).upper()
        if cur not in NOMINAL_RATES:
            raise ValueError(f"currencies: {name}: {cur!r} is not one of {', '.join(NOMINAL_RATES)}")
        if cur != "USD" and fmt not in _CURRENCY_FORMATS:
            raise ValueError(
                f"currencies: {name} in {cur} needs a format that states its currency "
                f"({', '.join(_CURRENCY_FORMATS)}), not {fmt}"
            )
        out.append(cur)
    return out


def _file_formats(fmt: str | Mapping[str, str], accounts: Sequence[str]) -> list[str]:
    by_account = (
        {a: fmt for a in accounts} if isinstance(fmt, str) else {a: fmt.get(a, "csv") for a in accounts}
    )
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


def _write_statement(
    path, fmt, a, name, r: _Render, idx, fname, w: _Written, currency: str, opening_cents: int, statement_id
) -> dict:
    """One account's rows as a bank statement (oldest first, as banks write them). Bank ids are
    `YYMMDD` + 4 characters of the row's token + its 6-digit ordinal in the statement: unique per
    statement (a duplicated charge has its own), deterministic, at most 16 characters (MT940)."""
    core = r.core
    idx = idx[::-1]
    day, cents, tok = core["day"][idx], core["cents"][idx], core["token"][idx]
    dates = r.cal.iso[day]
    desc = _render_descriptions(
        r.catalog, r.cal, core["tmpl"][idx], tok, day, core["override"][idx], r.overrides
    )
    ref = _references(r, idx)
    category = _CAT_NAMES[r.written_cat[idx]]
    if fmt == "qif":  # a transfer's category is the other account, in brackets (Quicken's way)
        for i in np.flatnonzero(core["xfer"][idx] >= 0):
            category[i] = f"[{ref[i]}]"
    code = _base36(tok >> np.uint64(24), 4)
    txns = [
        writers.Txn(d, int(c), s, f"{d[2:4]}{d[5:7]}{d[8:10]}{k}{i:06d}", rf, g)
        for i, (d, c, s, rf, g, k) in enumerate(
            zip(
                dates.tolist(), cents.tolist(), desc.tolist(), ref.tolist(), category.tolist(), code.tolist()
            ),
            1,
        )
    ]
    statement = writers.Statement(
        account_id(name, fmt),
        txns,
        kind="credit_card" if name in _CARD_ACCOUNTS else "checking",
        currency=currency,
        opening_cents=opening_cents,
        statement_id=statement_id or f"TF{r.end:%y%m%d}{a:02d}",
        created=r.end if statement_id is None or not len(idx) else dt.date.fromisoformat(dates.max()),
    )
    data, starts = writers.write(fmt, statement)
    _record_truth(r, idx, starts, dates, desc, _format_amounts(cents), fname, w)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "invalid": [],
        "account_id": statement.account,
        "opening_cents": statement.opening_cents,
        "closing_cents": statement.closing_cents,
        "lines": np.array(starts, dtype=np.int64)[::-1],
        "first": dates.min() if len(idx) else None,
        "last": dates.max() if len(idx) else None,
    }


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
    q = (
        exp.assign(a=-exp["Amount"])
        .groupby("Category")["a"]
        .quantile([0.05, 0.25, 0.5, 0.75, 0.95])
        .unstack()
    )
    quantiles = {
        c: {f"p{int(k * 100)}": round(float(v), 2) for k, v in row.items()} for c, row in q.iterrows()
    }
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
                "n": len(g),
                "median_days": med,
                "iqr_days": iqr,
                "median_amount": round(float(amounts.median()), 2),
            }
    wd = df["Date"].dt.day_of_week.value_counts(normalize=True).reindex(range(7), fill_value=0)
    mo = df["Date"].dt.month.value_counts(normalize=True).reindex(range(1, 13), fill_value=0)
    return {
        "files": {p.name: int((df["file"] == p.name).sum()) for p in paths},
        "rows": len(df),
        "expense_rows": len(exp),
        "income_rows": len(inc),
        "date_range": [df["Date"].min().date().isoformat(), df["Date"].max().date().isoformat()]
        if len(df)
        else None,
        "category_shares": {k: float(v) for k, v in shares.items()},
        "amount_quantiles": quantiles,
        "income_quantiles": {
            f"p{int(k * 100)}": round(float(v), 2)
            for k, v in inc["Amount"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).items()
        }
        if len(inc)
        else {},
        "recurring": recurring,
        "weekday_shares": {
            d: round(float(wd[i]), 4) for i, d in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
        },
        "month_shares": {i: round(float(mo[i]), 4) for i in range(1, 13)},
    }


def format_report(rep: dict) -> str:
    out = [
        f"{rep['rows']:,} valid rows ({rep['expense_rows']:,} expenses, {rep['income_rows']:,} income), "
        f"{rep['date_range'][0]} .. {rep['date_range'][1]}"
        if rep["date_range"]
        else "no rows"
    ]
    out.append("files: " + ", ".join(f"{k} {v:,}" for k, v in rep["files"].items()))
    out.append("")
    out.append(f"{'category':<22}{'share':>7}{'p5':>10}{'p25':>10}{'p50':>10}{'p75':>10}{'p95':>11}")
    for c, s in rep["category_shares"].items():
        q = rep["amount_quantiles"][c]
        out.append(
            f"{c:<22}{s:>7.1%}"
            + "".join(f"{q[k]:>10,.2f}" for k in ("p5", "p25", "p50", "p75"))
            + f"{q['p95']:>11,.2f}"
        )
    if rep["income_quantiles"]:
        q = rep["income_quantiles"]
        out.append(
            f"{'(income)':<22}{'':>7}"
            + "".join(f"{q[k]:>10,.2f}" for k in ("p5", "p25", "p50", "p75"))
            + f"{q['p95']:>11,.2f}"
        )
    out.append("")
    out.append("recurring (median days between charges, IQR, n, median amount):")
    for k, v in rep["recurring"].items():
        out.append(
            f"  {k:<62}{v['median_days']:>6.1f}d  iqr {v['iqr_days']:>4.1f}  n {v['n']:>5}  "
            f"{v['median_amount']:>10,.2f}"
        )
    out.append("")
    out.append("weekday shares: " + "  ".join(f"{k} {v:.1%}" for k, v in rep["weekday_shares"].items()))
    out.append("month shares:   " + "  ".join(f"{k} {v:.1%}" for k, v in rep["month_shares"].items()))
    return "\n".join(out)
