"""Babel catalogs of every customer-facing string, one folder per language."""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

LOCALES_DIR = Path(__file__).resolve().parent
LANGUAGES = ("de", "en", "tr", "ru", "ar")
DOMAIN = "messages"


class CatalogMissing(Exception):
    """The compiled catalog of a language is missing: run `make catalogs`."""


@cache
def load_catalog(language: str) -> gettext.GNUTranslations:
    """Load the compiled catalog of a language (once per process)."""
    path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not path.exists():
        raise CatalogMissing(f"{path} is missing: run `make catalogs` (pybabel compile)")
    with path.open("rb") as handle:
        return gettext.GNUTranslations(handle)
