"""docs/api.rst's table of Swift API features agrees with ``/info``.

Every row marked *yes* with an ``/info`` key is advertised, every row
marked *no* is not, and every key ``/info`` advertises has a row.
"""

from __future__ import annotations

import os
import re

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "api.rst")
TITLE = "Swift API features"


def feature_rows() -> list[tuple[str, str | None, str]]:
    """(feature, /info key or None, offered) for each row of the table."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index(TITLE + "\n"):]
    rules = [m.start() for m in re.finditer(r"^=+(  +=+)+$", section, re.M)]
    assert len(rules) >= 3, "the table's three rules"
    body = section[rules[1]:rules[2]].splitlines()[1:]
    header = section[rules[0]:rules[1]].splitlines()[0]
    columns = [m.start() for m in re.finditer(r"=+", header)]
    rows = []
    for line in body:
        ends = [*columns[1:], None]
        cells = [line[a:b].strip() for a, b in zip(columns, ends, strict=True)]
        if not cells[0]:
            continue  # a continuation line of the notes column
        key = re.fullmatch(r"``(\w+)``", cells[1])
        rows.append((cells[0], key.group(1) if key else None, cells[2]))
    return rows


def test_the_table_and_info_agree(client):
    info = client.call("GET", "/info").json()
    rows = feature_rows()
    assert len(rows) >= 20
    for feature, key, offered in rows:
        assert offered in ("yes", "no"), feature
        if key is None:
            continue
        assert (key in info) == (offered == "yes"), (feature, key, offered)
    documented = {key for _feature, key, _offered in rows if key}
    assert set(info) <= documented, set(info) - documented
