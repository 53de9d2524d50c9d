"""The catalogs: complete, not fuzzy, placeholders intact, no customer text outside them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from locales import LANGUAGES, LOCALES_DIR

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _catalog(language: str):  # type: ignore[no-untyped-def]
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


def _template_ids() -> set[str]:
    with (LOCALES_DIR / "messages.pot").open("rb") as handle:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_and_not_fuzzy(language: str) -> None:
    catalog = _catalog(language)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert ids == _template_ids(), "catalog out of date: pybabel update"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(s.strip() for s in strings), f"{language}: untranslated {message.id!r}"
        if isinstance(message.string, tuple):
            assert len(strings) == catalog.num_plurals, f"{language}: plural forms {message.id!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_survive_translation(language: str) -> None:
    for message in _catalog(language):
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[1]
        expected = set(PLACEHOLDER.findall(source))
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for index, text in enumerate(strings):
            found = set(PLACEHOLDER.findall(text))
            # Arabic may say "in two minutes" without the number for its forms 0, 1 and 2.
            optional = {"count"} if language == "ar" and index < 3 else set()
            assert found - expected == set(), f"{language}: unknown placeholder in {text!r}"
            assert expected - found <= optional, f"{language}: lost placeholder in {text!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogs_are_current(language: str) -> None:
    mo = LOCALES_DIR / language / "LC_MESSAGES" / "messages.mo"
    po = mo.with_suffix(".po")
    assert mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime, "run `make catalogs`"


def _customer_text_outside_catalogs(path: Path) -> list[str]:
    """Find Reply(...) or Button(...) built from a literal that is not translated."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("Reply", "Button") and node.args):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and any(
                ch.isalpha() for ch in first.value):
            found.append(f"{path.name}:{node.lineno} {first.value!r}")
        if isinstance(first, ast.JoinedStr) and any(
                isinstance(v, ast.Constant) and any(ch.isalpha() for ch in str(v.value))
                for v in first.values):
            found.append(f"{path.name}:{node.lineno} f-string with words")
    return found


def test_no_customer_facing_string_outside_the_catalogs() -> None:
    offenders = []
    for folder in ("dialogues", "bot"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            offenders += _customer_text_outside_catalogs(path)
    assert offenders == []


def test_extraction_is_up_to_date() -> None:
    """Every t("...") in the code is in the template (re-run pybabel extract otherwise)."""
    from babel.messages.extract import extract_from_dir

    in_code = set()
    for folder in ("dialogues", "bot"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")],
            keywords={"t": None, "plural": (1, 2)},
        ):
            in_code.add(message if isinstance(message, str) else message[0])
    assert in_code - _template_ids() == set(), "run pybabel extract and update the catalogs"
