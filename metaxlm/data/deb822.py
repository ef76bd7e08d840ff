"""Parsers for the archive's RFC-822 style indices: stanzas, Release/InRelease, Translation, Packages.

All parsers take text lines (already decompressed) and the name of the file they came from, so a
malformed index is reported as one :class:`~metaxlm.errors.UserError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from metaxlm.errors import UserError

_FIELD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$")


def iter_stanzas(lines: Iterable[str], where: str) -> Iterator[dict[str, str]]:
    """Yield each stanza as ``{field: value}``; continuation lines are joined with ``\\n``.

    ``#`` comment lines (deb822 ``.sources`` files) are skipped. A continuation line before any
    field, or a line that is neither ``Field: value`` nor a continuation, is a UserError.
    """
    stanza: dict[str, str] = {}
    last: str | None = None
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip(" \t"):  # only ASCII blanks end a stanza (a line " \u00a0" is text)
            if stanza:
                yield stanza
            stanza, last = {}, None
            continue
        if line.startswith("#"):
            continue
        if line[0] in " \t":
            if last is None:
                raise UserError(f"{where}: line {n} is a continuation line outside any field; "
                                "the index is malformed (delete it from the cache and fetch again)")
            stanza[last] += "\n" + line
            continue
        m = _FIELD.match(line)
        if not m:
            raise UserError(f"{where}: line {n} is not 'Field: value' ({line[:40]!r}); "
                            "the index is malformed (delete it from the cache and fetch again)")
        last = m.group(1)
        stanza[last] = m.group(2).strip()
    if stanza:
        yield stanza


# ----------------------------------------------------------------------------------------- Release

PGP_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"


def strip_clearsign(text: str) -> str:
    """The signed body of an ``InRelease`` file (or the text itself when it is not clear-signed)."""
    if not text.startswith(PGP_BEGIN):
        return text
    head, sep, rest = text.partition("\n\n")  # armor headers end at the first blank line
    if not sep:
        raise UserError("InRelease: clear-signed text without a body; the file is truncated")
    body, sep, _ = rest.partition("\n-----BEGIN PGP SIGNATURE-----")
    if not sep:
        raise UserError("InRelease: no signature block; the file is truncated")
    # dash-escaped lines ("- -----") lose their escape
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in body.split("\n")) + "\n"


@dataclass(frozen=True)
class FileSum:
    sha256: str
    size: int


def parse_release(text: str, where: str = "Release") -> tuple[dict[str, str], dict[str, FileSum]]:
    """``(fields, {path: FileSum})`` from a Release or InRelease file (SHA256 section)."""
    stanzas = list(iter_stanzas(strip_clearsign(text).splitlines(), where))
    if len(stanzas) != 1:
        raise UserError(f"{where}: expected one stanza, found {len(stanzas)}; the file is malformed")
    fields = stanzas[0]
    if "SHA256" not in fields:
        raise UserError(f"{where}: no SHA256 section; the file is truncated or not a Release file")
    sums: dict[str, FileSum] = {}
    for n, line in enumerate(fields["SHA256"].split("\n")):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]) or not parts[1].isdigit():
            raise UserError(f"{where}: SHA256 entry {n} is malformed ({line.strip()[:60]!r})")
        sums[parts[2]] = FileSum(parts[0], int(parts[1]))
    return {k: v for k, v in fields.items() if k not in ("SHA256", "MD5Sum", "SHA1")}, sums


# ------------------------------------------------------------------------------------- descriptions

@dataclass(frozen=True)
class Description:
    """One package description: short line and long paragraphs (markup-free plain text)."""

    short: str
    paragraphs: tuple[str, ...]

    def text(self) -> str:
        """Short description and paragraphs as one line of text."""
        short = self.short if self.short[-1:] in ".!?。" or not self.paragraphs else self.short + "."
        return " ".join((short,) + self.paragraphs)


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF or 0xAC00 <= o <= 0xD7AF


def join_lines(lines: list[str]) -> str:
    """Wrapped lines as one line: spaces between words, none between CJK characters."""
    out = ""
    for line in lines:
        line = " ".join(line.split())
        if not line:
            continue
        if out and not (_is_cjk(out[-1]) and _is_cjk(line[0])):
            out += " "
        out += line
    return out


def parse_description(value: str) -> Description:
    """Split a ``Description`` field value: first line short, then paragraphs separated by `` .``.

    Lines are joined with spaces and whitespace is collapsed; list bullets stay as text.
    """
    lines = value.split("\n")
    short = " ".join(lines[0].split())
    paras: list[str] = []
    cur: list[str] = []
    for line in lines[1:]:
        body = line[1:] if line[:1] in " \t" else line
        if body.strip() == ".":
            if cur:
                paras.append(join_lines(cur))
            cur = []
        else:
            cur.append(body)
    if cur:
        paras.append(join_lines(cur))
    return Description(short, tuple(p for p in paras if p))


@dataclass(frozen=True)
class Translation:
    package: str
    md5: str
    description: Description


def parse_translation(lines: Iterable[str], lang: str, where: str) -> Iterator[Translation]:
    """Entries of ``Translation-<lang>`` (``lang`` as in the file name, e.g. ``pt_BR``)."""
    key = f"Description-{lang}"
    for i, st in enumerate(iter_stanzas(lines, where)):
        if "Package" not in st or "Description-md5" not in st or key not in st:
            missing = [f for f in ("Package", "Description-md5", key) if f not in st]
            raise UserError(f"{where}: entry {i + 1} ({st.get('Package', '?')}) lacks {missing[0]}; "
                            "the index is truncated or malformed")
        md5 = st["Description-md5"]
        if not re.fullmatch(r"[0-9a-f]{32}", md5):
            raise UserError(f"{where}: entry {i + 1} ({st['Package']}) has a bad Description-md5 {md5!r}")
        if not st[key].strip():
            continue
        yield Translation(st["Package"], md5, parse_description(st[key]))


@dataclass(frozen=True)
class BinaryPackage:
    package: str
    source: str
    section: str
    md5: str
    filename: str
    sha256: str
    size: int


def parse_packages(lines: Iterable[str], where: str) -> Iterator[BinaryPackage]:
    """Stanzas of a ``Packages`` index. ``Source`` defaults to the package; its version is dropped;
    a ``contrib/``/``non-free/`` prefix is removed from ``Section``."""
    for i, st in enumerate(iter_stanzas(lines, where)):
        if "Package" not in st:
            raise UserError(f"{where}: stanza {i + 1} has no Package field; the index is malformed")
        source = st.get("Source", st["Package"]).split("(")[0].strip() or st["Package"]
        section = st.get("Section", "").rsplit("/", 1)[-1]
        size = st.get("Size", "0")
        if not size.isdigit():
            raise UserError(f"{where}: package {st['Package']} has a bad Size {size!r}")
        yield BinaryPackage(st["Package"], source, section, st.get("Description-md5", ""),
                            st.get("Filename", ""), st.get("SHA256", ""), int(size))
