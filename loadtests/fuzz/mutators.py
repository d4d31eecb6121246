"""Hostile values as Hypothesis strategies: text, identifiers, protobuf fields and raw bytes.

Generic over messages (`mutate_message` walks a descriptor), so every case strategy
(cases.py, core.py, agency.py) draws its hostility from here.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from crossroads.validation import MAX_MESSAGE_ID
from loadtests.fuzz.world import FuzzError, FuzzWorld

_T = TypeVar("_T")
_INT32 = st.integers(-(2**31), 2**31 - 1)
_INT64 = st.integers(-(2**63), 2**63 - 1)
_UINT32 = st.integers(0, 2**32 - 1)
_UINT64 = st.one_of(st.integers(0, 1_000), st.integers(0, 2**64 - 1))


_HOSTILE_WORDS = (
    "",
    " ",
    "\x00",
    "null",
    "None",
    "-1",
    "../../../etc/passwd",
    "' OR 1=1 --",
    "\u202e",
    "\ufeff",
    "２０２６-１０-０１",
    "2026-02-30",
    "2026-13-01",
    "0000-01-01",
    "9999-12-31",
    "+2026-10-01",
    "2026-10-01T00:00:00",
    "20261001",
    "2026Q5",
    "٢٠٢٦Q3",
    "ONSS",
    "core",
    "%s%s%n",
)
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


class _Item:
    """items[i], with a short repr: Hypothesis prints strategies, and a corpus is long."""

    def __init__(self, items: Sequence[Any], name: str) -> None:
        self._items, self._name = items, name

    def __call__(self, i: int) -> Any:
        return self._items[i]

    def __repr__(self) -> str:
        return f"<{len(self._items)} {self._name}>"


def pick(items: Sequence[_T], name: str) -> st.SearchStrategy[_T]:
    """One of `items` (a long sequence), drawn by index."""
    if not items:
        raise FuzzError(f"no {name} to draw from")
    return st.integers(0, len(items) - 1).map(_Item(items, name))


def weighted(*choices: tuple[int, st.SearchStrategy[_T]]) -> st.SearchStrategy[_T]:
    """One of the strategies, each drawn with its weight (st.one_of draws them alike)."""
    bounds = list(itertools.accumulate(w for w, _ in choices))
    return st.integers(0, bounds[-1] - 1).flatmap(lambda i: choices[bisect.bisect_right(bounds, i)][1])


def _bad_identifier(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Near misses of valid NISS / KBO numbers: check digits, length, other scripts' digits."""
    return st.one_of(
        valid.map(lambda v: v[:-1] + str((int(v[-1]) + 1) % 10)),
        valid.map(lambda v: v[:-1]),
        valid.map(lambda v: v + "0"),
        valid.map(lambda v: v.translate(_SUPERSCRIPTS)),
        valid.map(lambda v: v.translate(_ARABIC_INDIC)),
        valid.map(lambda v: v.translate(_FULLWIDTH)),
        valid.map(lambda v: v[:2] + "99" + v[4:]),
        valid.map(lambda v: f" {v}"),
        valid.map(lambda v: v.replace("0", "O")),
    )


def hostile_text(world: FuzzWorld) -> st.SearchStrategy[str]:
    """Strings no field should accept, and some it should: identifiers, dates, oversized, non-printable."""
    nisses = pick(world.nisses, "nisses")
    return st.one_of(
        st.text(max_size=20),
        st.sampled_from(_HOSTILE_WORDS),
        nisses,
        _bad_identifier(nisses),
        _bad_identifier(pick(world.kbos or ("0200065765",), "kbos")),
        st.integers(MAX_MESSAGE_ID + 1, 70_000).map(lambda n: "9" * n),
        st.text(st.characters(categories=("Cc", "Cf", "Zl", "Zp", "Co")), min_size=1, max_size=8),
    )


def _scalar(fd: FieldDescriptor, text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return text
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return _INT64
    if fd.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return _UINT64
    if fd.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return _UINT32
    return st.one_of(_INT32, st.integers(-3, 10))  # int32 and enums: open enums take unknown values


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _how_many(draw: st.DrawFn) -> int:
    return draw(st.one_of(st.integers(0, 3), st.integers(1_001, 3_000)))  # a few, or past every limit


def mutate_message(draw: st.DrawFn, message: Message, text: st.SearchStrategy[str], depth: int = 0) -> None:
    """Give 1-3 fields of `message` (in place) hostile values, by their wire types, recursing into messages."""
    fields = message.DESCRIPTOR.fields
    for _ in range(draw(st.integers(1, 3))):
        fd = draw(st.sampled_from(tuple(fields)))
        _mutate_field(draw, message, fd, text, depth)


def _mutate_field(
    draw: st.DrawFn, message: Message, fd: FieldDescriptor, text: st.SearchStrategy[str], depth: int
) -> None:
    value = getattr(message, fd.name)
    if not fd.is_repeated:
        if fd.message_type is None:
            setattr(message, fd.name, draw(_scalar(fd, text)))
        elif depth < 2:
            mutate_message(draw, value, text, depth + 1)
        return
    n = _how_many(draw)
    few = min(n, 3)  # drawn; a long list repeats small fillers, so it costs no more draws or memory
    if _is_map(fd):
        for _ in range(few):
            value[draw(text)] = draw(text)
        value.update({f"k{i}": "v" for i in range(few, n)})
    elif fd.message_type is not None:
        for _ in range(few):
            item = value.add()
            if depth < 2 and draw(st.booleans()):
                mutate_message(draw, item, text, depth + 1)
        value.extend([fd.message_type._concrete_class()] * (n - few))
    else:
        value.extend(draw(st.lists(_scalar(fd, text), min_size=few, max_size=few)))
        value.extend([_filler(fd)] * (n - few))


def _filler(fd: FieldDescriptor) -> Any:
    return {FieldDescriptor.TYPE_STRING: "x", FieldDescriptor.TYPE_BYTES: b"x"}.get(fd.type, 1)


_EVIL_CHUNKS = (
    b"\xff" * 10 + b"\x01",  # a varint of 11 bytes
    b"\x0a\xff\xff\xff\xff\x0f",  # field 1, length 4 GiB, no data
    b"\x0a\x02\xc3\x28",  # field 1 (a string), invalid UTF-8
    b"\x7b",  # start of a group (field 15) that never ends
    b"\x7c",  # end of a group that never started
    b"\x00",  # tag 0
    b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # kind = -1, as a 10-byte varint
    b"\x10\x80\x80\x80\x80\x10",  # kind beyond 32 bits
    b"\x52\x05\x0a\x03\xc3\x28\x41",  # payload whose field 1 is invalid UTF-8
    b"\x0f",  # wire type 7: does not exist
)


def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after 1-4 byte-level mutations: flips, inserts, deletes, truncations, splices, evil chunks."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op, pos = draw(st.integers(0, 7)), draw(st.integers(0, len(b)))
        at = min(pos, len(b) - 1)
        if op == 0 and b:
            b[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and b:
            b[at] = draw(st.integers(0, 255))
        elif op == 2:
            b[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == 3:
            del b[pos : pos + draw(st.integers(1, 16))]
        elif op == 4:
            del b[pos:]
        elif op == 5:
            b[pos:pos] = b[pos : pos + draw(st.integers(1, 64))]
        else:
            b[pos:pos] = draw(st.sampled_from(_EVIL_CHUNKS))
    return bytes(b)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def nested(depth: int, style: int) -> bytes:
    """Unknown field 15 nested `depth` deep: 0 groups, 1 length-delimited messages, 2 groups never closed."""
    if style == 0:
        return b"\x7b" * depth + b"\x7c" * depth
    if style == 2:
        return b"\x7b" * depth
    lengths = [0]
    for _ in range(depth):  # inside out: each level is a tag, the inner length, the inner bytes
        lengths.append(1 + len(_varint(lengths[-1])) + lengths[-1])
    return b"".join(b"\x7a" + _varint(n) for n in reversed(lengths[:-1]))


def _nested_bytes() -> st.SearchStrategy[bytes]:
    return st.builds(nested, st.one_of(st.integers(1, 200), st.integers(200, 30_000)), st.integers(0, 2))
