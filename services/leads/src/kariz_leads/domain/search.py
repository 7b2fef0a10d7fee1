"""Text search over leads: the words of the contact's name, the company's name and the e-mail's local
part, found by their beginnings whatever their case and accents ("jose gar" finds José García of
García & Hijos, "MULL" finds Müller).

A lead keeps its folded words (its *search keys*, stored and indexed with it); a search's words are
folded the same way, and a lead matches when every search word begins one of its keys.
"""

from __future__ import annotations

import re
import unicodedata

from kariz_shared.contracts.events import Company, Contact

#: A search of more words than this is refused: each word is one more condition on the index.
MAX_TERMS = 5
#: Longer words are cut: nobody types more to find a lead, and the index keys stay small.
MAX_WORD = 40
_WORD = re.compile(r"[^\W_]+")
# Letters NFKD does not take apart into a base letter and a mark.
_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "\u0131": "i", "ħ": "h"}
)


def fold(text: str) -> str:
    """``text`` without case and accents: NFKD, combining marks dropped, case folded ("Ærø" -> "aero",
    "Straße" -> "strasse")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    """The folded words of ``text``: runs of letters and digits, each at most MAX_WORD long."""
    return [word[:MAX_WORD] for word in _WORD.findall(fold(text))]


def search_keys(contact: Contact, company: Company) -> list[str]:
    """What a lead is found by: the words of its first, last and company name and of its e-mail's local
    part, and that local part whole ("grace.hopper"); sorted, each once."""
    local = contact.email.rpartition("@")[0]
    keys = {
        *words(contact.first_name),
        *words(contact.last_name),
        *words(company.name),
        *words(local),
        fold(local)[:MAX_WORD],
    }
    return sorted(key for key in keys if key)


def search_terms(text: str) -> tuple[str, ...]:
    """The words a search looks for, each once and in order; ValueError when there is none or more than
    MAX_TERMS."""
    terms = tuple(dict.fromkeys(words(text)))
    if not terms:
        raise ValueError(f"{text.strip()!r} has no word to search for (letters or digits)")
    if len(terms) > MAX_TERMS:
        raise ValueError(f"at most {MAX_TERMS} words, not {len(terms)}")
    return terms


def prefix_end(term: str) -> str:
    """The least string after every string that begins with ``term``: the upper bound of its prefix
    range (``term <= key < prefix_end(term)``)."""
    return term[:-1] + chr(ord(term[-1]) + 1)


def found_by(keys: list[str], terms: tuple[str, ...]) -> bool:
    """Whether every term begins one of ``keys``."""
    return all(any(key.startswith(term) for key in keys) for term in terms)
