"""Which archive URL to use: ``--mirror``, ``$METAXLM_MIRROR``, or the system's apt sources.

Both apt formats are read: one-line ``sources.list`` / ``*.list`` and deb822 ``*.sources`` (files with
other extensions are ignored, as apt does; ``Enabled: no`` stanzas are skipped). Security, updates and
backports suites are skipped; an entry for the requested release wins, else one for another Debian
suite (the same archive serves every release).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from metaxlm.data.deb822 import iter_stanzas
from metaxlm.errors import UserError

ENV_MIRROR = "METAXLM_MIRROR"
DEBIAN_SUITES = {"stable", "oldstable", "oldoldstable", "testing", "unstable", "sid", "experimental",
                 "buster", "bullseye", "bookworm", "trixie", "forky", "duke"}


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    where: str


def parse_one_line(text: str, where: str) -> list[AptSource]:
    """``deb [options] URI suite component...`` lines (``deb-src`` and comments ignored)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line[4:])  # [arch=amd64 signed-by=...]
        parts = line.split()
        if len(parts) >= 2:
            out.append(AptSource(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:]), where))
    return out


def parse_deb822(text: str, where: str) -> list[AptSource]:
    """deb822 ``.sources`` stanzas with ``Types: deb``."""
    out = []
    for st in iter_stanzas(text.splitlines(), where):
        if st.get("Enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in st.get("Types", "").split():
            continue
        suites = tuple(st.get("Suites", "").split())
        comps = tuple(st.get("Components", "").split())
        for uri in st.get("URIs", "").split():
            out.append(AptSource(uri.rstrip("/"), suites, comps, where))
    return out


def read_apt_sources(root: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every enabled ``deb`` entry under ``root`` (sources.list, sources.list.d/*.list, *.sources)."""
    files = []
    if (root / "sources.list").is_file():
        files.append(root / "sources.list")
    d = root / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    out: list[AptSource] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        out += parse_deb822(text, str(f)) if f.suffix == ".sources" else parse_one_line(text, str(f))
    return out


def _serves(suite: str) -> bool:
    return suite in DEBIAN_SUITES  # "bookworm-updates", "bookworm-security", ... are not plain suites


def pick_mirror(sources: list[AptSource], release: str) -> str | None:
    """The URI of the entry serving ``release`` (main), else of one serving another Debian suite."""
    usable = [s for s in sources if (not s.components or "main" in s.components)
              and not s.uri.rstrip("/").endswith("-security") and s.uri.split(":")[0] in ("http", "https", "file")]
    for s in usable:
        if release in s.suites:
            return s.uri
    for s in usable:
        if any(_serves(x) for x in s.suites):
            return s.uri
    return None


def resolve_mirror(release: str, mirror: str | None = None, apt_root: Path = Path("/etc/apt")) -> str:
    """The archive base URL (no trailing slash): option, then environment, then apt sources."""
    url = mirror or os.environ.get(ENV_MIRROR) or pick_mirror(read_apt_sources(apt_root), release)
    if not url:
        raise UserError(f"no apt source for the Debian archive in {apt_root}/sources.list(.d) and no mirror "
                        f"given: pass --mirror URL or set {ENV_MIRROR}")
    if not re.match(r"^(https?|file)://", url):
        raise UserError(f"mirror {url!r} is not an http(s):// or file:// URL")
    return url.rstrip("/")
