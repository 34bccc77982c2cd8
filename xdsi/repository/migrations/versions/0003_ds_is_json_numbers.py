"""Cached instance metadata sends DS and IS values as JSON numbers whenever their text is one.

Fragments cached by earlier revisions hold most DS and IS values as JSON strings, which PS3.18
F.2.3 allows but clients reading DS and IS as numbers refuse. This rewrites each such string
whose text is a JSON number (RFC 8259 section 6; for IS a JSON integer; finite as a double) into
that very token, as ``xdsi.encoding.dicom_json.decimal_value`` writes new fragments; every
other byte stays. The rule is copied here on purpose: a migration must keep doing what it did
when written, whatever the encoder becomes. The series touched get a new ``updated_at``, so a
client revalidating by Last-Modified fetches the new form.

Only DS and IS Value arrays change, and the opening ``"vr":"DS","Value":[`` can only be
markup: inside a JSON string every quote is escaped.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_BATCH = 500
_ARRAY = re.compile(rb'"vr":"(DS|IS)","Value":\[((?:"(?:[^"\\]|\\.)*"|[^"\]])*)\]')
# In a DS or IS Value array: a string, or a bare number token (the other members are null and commas).
_MEMBER = re.compile(rb'"((?:[^"\\]|\\.)*)"|(-?[0-9][-+.0-9eE]*)')
_GRAMMAR = {
    b"DS": re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"),
    b"IS": re.compile(rb"-?(?:0|[1-9][0-9]*)"),
}

_metadata = sa.table(
    "instance_metadata",
    sa.column("instance_fk", sa.Integer),
    sa.column("series_fk", sa.Integer),
    sa.column("json", sa.LargeBinary),
)
_series = sa.table("series", sa.column("id", sa.Integer), sa.column("updated_at", sa.DateTime(timezone=True)))


def as_numbers(fragment: bytes) -> bytes:
    """Each DS or IS string whose text is a JSON number becomes that number token."""

    def member(grammar: re.Pattern[bytes]) -> Callable[[re.Match[bytes]], bytes]:
        def replace(m: re.Match[bytes]) -> bytes:
            text = m.group(1)
            if text is not None and grammar.fullmatch(text) and math.isfinite(float(text)):
                return text
            return m.group(0)

        return replace

    return _ARRAY.sub(lambda m: _with_members(m, member(_GRAMMAR[m.group(1)])), fragment)


def as_strings(fragment: bytes) -> bytes:
    """Each DS or IS number token becomes a string of its text, as revision 0002 reads them."""

    def replace(m: re.Match[bytes]) -> bytes:
        return m.group(0) if m.group(2) is None else b'"' + m.group(2) + b'"'

    return _ARRAY.sub(lambda m: _with_members(m, replace), fragment)


def _with_members(m: re.Match[bytes], replace: Callable[[re.Match[bytes]], bytes]) -> bytes:
    head = m.group(0)[: m.start(2) - m.start(0)]
    return head + _MEMBER.sub(replace, m.group(2)) + b"]"


def _rewrite(change: Callable[[bytes], bytes]) -> None:
    """Every cached fragment through ``change``, in batches by key; touched series get a new stamp."""
    bind = op.get_bind()
    touched: set[int] = set()
    last = None
    while True:
        statement = sa.select(_metadata.c.instance_fk, _metadata.c.series_fk, _metadata.c.json)
        if last is not None:
            statement = statement.where(_metadata.c.instance_fk > last)
        rows = bind.execute(statement.order_by(_metadata.c.instance_fk).limit(_BATCH)).all()
        if not rows:
            break
        changed = []
        for key, series, old in rows:
            new = change(bytes(old))
            if new != bytes(old):
                changed.append({"key": key, "new": new})
                touched.add(series)
        if changed:
            bind.execute(
                _metadata.update().where(_metadata.c.instance_fk == sa.bindparam("key")).values(json=sa.bindparam("new")),
                changed,
            )
        last = rows[-1][0]
    now = datetime.now(timezone.utc)
    ordered = sorted(touched)
    for start in range(0, len(ordered), _BATCH):
        bind.execute(_series.update().where(_series.c.id.in_(ordered[start:start + _BATCH])).values(updated_at=now))


def upgrade() -> None:
    _rewrite(as_numbers)


def downgrade() -> None:
    _rewrite(as_strings)
