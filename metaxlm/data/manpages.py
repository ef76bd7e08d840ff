"""Man pages (roff, ``usr/share/man/[<locale>/]man<N>/<name>.<N>.gz``) as prose paragraphs.

:func:`man_paragraphs` turns the man(7) macro language into text: a paragraph ends at ``.PP``,
``.SH``, ``.TP``, ``.IP`` … or a blank line; font macros (``.B``, ``.BR`` …) keep their words;
escapes are resolved (``\\-`` -> ``-``, ``\\(em`` -> ``—``) or dropped (fonts, sizes, motions);
no-fill and example blocks (``.nf``/``.fi``, ``.EX``/``.EE``), tables (``.TS``/``.TE``),
equations, macro definitions and ``.ig`` blocks are skipped; section headings are not text.
A page that does not parse (a table, equation, macro definition or ``.ig`` block that is never
closed, text that is not UTF-8, a corrupt gzip stream) is a UserError naming the package and the page. ``.so`` pages (links to another page) have no text.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import Iterator

from metaxlm.data.debstream import iter_deb_files
from metaxlm.errors import UserError

ROOT = "usr/share/man/"
BREAKS = {"PP", "P", "LP", "SH", "SS", "TP", "TQ", "IP", "HP", "sp", "RS", "RE", "TH", "in", "ti", "bp",
          "SY", "YS", "OP", "UR", "UE", "MT", "ME", "Sh", "Pp", "Bl", "El", "It"}
FONTS = {"B", "I", "SM", "SB"}
ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}
SKIP_TO = {"TS": "TE", "EQ": "EN", "PS": "PE", "de": "..", "de1": "..", "am": "..", "am1": "..", "ig": ".."}
NOFILL = {"nf": "fi", "EX": "EE"}  # code: skipped up to the closing request or the next paragraph macro
SPECIAL = {"em": "—", "en": "–", "aq": "'", "dq": '"', "bu": "•", "lq": "“", "rq": "”", "oq": "‘", "cq": "’",
           "co": "©", "rg": "®", "tm": "™", "mi": "-", "hy": "-", "ga": "`", "ti": "~", "ha": "^", "rs": "\\",
           "sl": "/", "pl": "+", "eq": "=", "lh": "☜", "rh": "☞", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›",
           "de": "°", "mu": "×", "di": "÷", "ss": "ß", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "<-": "←"}
_ESC = re.compile(r"\\(\((..)|\[([^\]\s]*)\]|\*(\(..|\[[^\]]*\]|.)|f(\(..|\[[^\]]*\]|.)|s[-+]?(\d+|\(\d\d|\[\d+\])"
                  r"|[hvwoXNlLbDxRSZ](\'[^\']*\'|\"[^\"]*\")|n(\(..|\[[^\]]*\]|.)|k.|[gjmMVYz](\(..|\[[^\]]*\]|.)"
                  r"|.)", re.S)
_SIMPLE = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`", ".": ".",
           "&": "", "|": "", "^": "", "%": "", ":": "", "c": "", "/": "", ",": "", ")": "", "t": " ",
           "p": "", "d": "", "u": "", "r": "", "a": "", "!": "", "{": "", "}": "", "E": "", "?": ""}


class RoffError(ValueError):
    pass


def _escape(m: re.Match) -> str:
    whole = m.group(1)
    if m.group(2) is not None:
        return SPECIAL.get(m.group(2), "")
    if m.group(3) is not None:
        name = m.group(3)
        if name.startswith("u") and re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
            return chr(int(name[1:], 16))
        return SPECIAL.get(name, "")
    if whole[0] in "*fsnk" or whole[0] in "gjmMVYz" or whole[0] in "hvwoXNlLbDxRSZ":
        return ""
    return _SIMPLE.get(whole, "")


def unescape(line: str, where: str) -> str:
    """``line`` with roff escapes resolved or dropped (an unknown one loses its backslash)."""
    if "\\" not in line:
        return line
    return _ESC.sub(_escape, line)


def _args(text: str) -> list[str]:
    """Macro arguments: words, or double-quoted strings (``""`` inside is a quote)."""
    return [a[1:-1].replace('""', '"') if a.startswith('"') else a
            for a in re.findall(r'"(?:[^"]|"")*"?|\S+', text)]


def man_paragraphs(text: str, where: str = "man page") -> list[str]:
    """Prose paragraphs of a man page (see the module docstring); :class:`RoffError` when it does not
    parse."""
    paras: list[str] = []
    cur: list[str] = []
    skip_until: str | None = None
    nofill: str | None = None
    skip_start = 0

    def flush():
        if cur:
            p = " ".join(" ".join(cur).split())
            if p:
                paras.append(p)
            cur.clear()

    lines = text.split("\n")
    if lines and lines[0].startswith(".so ") and len([ln for ln in lines if ln.strip()]) <= 2:
        return []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if skip_until is not None:
            m = re.match(r"[.'][ \t]*(\S+)", line)
            if m and (m.group(1) == skip_until or (skip_until == ".." and m.group(1).startswith("."))):
                skip_until = None
            continue
        if nofill is not None:
            m = re.match(r"[.'][ \t]*(\S+)", line)
            if m and (m.group(1) == nofill or m.group(1) in BREAKS):
                nofill = None
            if not m or m.group(1) not in BREAKS:
                continue
        if line.startswith((".\\\"", "'\\\"", '\\"', ".\\#")) or line.strip() in (".", "'"):
            continue
        if line[:1] in ".'":
            m = re.match(r"[.'][ \t]*(\S+)[ \t]*(.*)", line)
            if not m:
                continue
            req, rest = m.group(1), m.group(2)
            if req in SKIP_TO:
                flush()
                skip_until, skip_start = SKIP_TO[req], n
                continue
            if req in NOFILL:
                flush()
                nofill = NOFILL[req]
                continue
            if req in BREAKS:
                flush()
                continue
            if req in FONTS:
                cur.append(unescape(" ".join(_args(rest)), f"{where}:{n}"))
            elif req in ALTERNATING:
                cur.append(unescape("".join(_args(rest)), f"{where}:{n}"))
            continue  # every other request sets state, not text
        if not line.strip():
            flush()
            continue
        cur.append(unescape(line.split('\\"')[0] if '\\"' in line else line, f"{where}:{n}"))
    if skip_until is not None:
        raise RoffError(f"{where}: the block opened at line {skip_start} is never closed (no "
                        f"{'..' if skip_until == '..' else '.' + skip_until})")
    flush()
    return paras


def page_key(rel: str) -> tuple[str, str] | None:
    """``(locale, "man1/ls.1")`` for a man page path (``""`` = English), None for other files."""
    parts = rel[len(ROOT):].split("/")
    if len(parts) == 2 and parts[0].startswith("man"):
        loc, sec, name = "", parts[0], parts[1]
    elif len(parts) == 3 and parts[1].startswith("man"):
        loc, sec, name = parts[0], parts[1], parts[2]
    else:
        return None
    return loc, f"{sec}/{name.removesuffix('.gz')}"


def iter_man_pages(deb: Path) -> Iterator[tuple[str, str, list[str]]]:
    """``(locale, key, paragraphs)`` of every man page of a package, one file at a time; a page that
    does not parse is a UserError."""
    for rel, data in iter_deb_files(deb, (ROOT,)):
        k = page_key(rel)
        if k is None:
            continue
        where = f"{deb.name}: {rel}"
        try:
            raw = gzip.decompress(data) if rel.endswith(".gz") else data
            text = raw.decode("utf-8")
            paras = man_paragraphs(text, where)
        except (OSError, EOFError, zlib.error) as e:
            raise UserError(f"{where}: corrupt gzip stream ({e}); the package is damaged") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{where}: man page is not UTF-8 (byte {e.start})") from None
        except RoffError as e:
            raise UserError(f"{e}; this roff does not parse") from None
        yield k[0], k[1], paras
