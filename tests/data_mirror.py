"""A small synthetic Debian mirror on disk, for offline fetch/build tests.

``make_mirror(root)`` writes ``dists/<release>/Release`` (unsigned, with real SHA256 sums), compressed
``Translation-{en,de,fr}`` and ``Packages``, and the two documentation .debs (ar + data.tar.xz) in the
pool. Text is generated from a fixed vocabulary so that it is deterministic and varied enough to split.
``sign_mirror(root, home)`` adds an ``InRelease`` clear-signed by a throwaway key and returns the
keyring to verify it with (needs ``gpg``; ``signing_available()`` says whether it and ``gpgv`` exist).
Without it the mirror is unsigned and fetching needs ``allow_unsigned``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

RELEASE = "testrel"
SECTIONS = ["games", "graphics", "sound", "net", "science", "admin", "text", "libs", "python", "doc"]
WORDS = ("tool library game engine network server client image audio video editor text file system "
         "disk user data fast small simple graphical command line interface support format protocol "
         "player window screen plugin module driver kernel shell script package archive viewer").split()
DE = {w: w[::-1] + "en" for w in WORDS}  # not German, but a deterministic "translation"
FR = {w: w[::-1] + "ie" for w in WORDS}


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _translate(text: str, table: dict) -> str:
    return " ".join(table.get(w.lower().strip("."), w) for w in text.split()).capitalize() + "."


def _field(desc_short: str, paras: list[str]) -> str:
    body = "\n .\n".join(" " + p for p in paras)
    return f"{desc_short}\n{body}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode())
        out.write(data)
        if len(data) % 2:
            out.write(b"\n")
    return out.getvalue()


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(files: dict[str, bytes], data_member: str = "data.tar.xz") -> bytes:
    return _ar([("debian-binary", b"2.0\n"), ("control.tar.xz", _tar_xz({"./control": b"Package: x\n"})),
                (data_member, _tar_xz(files))])


def _mallard(blocks: list[str]) -> bytes:
    body = "".join(f"<p>{b}</p>" for b in blocks)
    return (f'<page xmlns="http://projectmallard.org/1.0/" id="x"><info><desc>{blocks[0]}</desc></info>'
            f"<title>{blocks[1]}</title>{body}</page>").encode()


def _html(blocks: list[str]) -> bytes:
    body = "".join(f'<div class="para">{b}</div>' for b in blocks)
    return f"<html><body><p class=\"title\">{blocks[0]}</p>{body}<pre>code here</pre></body></html>".encode()


def doc_files(rng: random.Random, pages: int = 12, blocks: int = 6) -> tuple[dict, dict]:
    gnome, handbook = {}, {}
    for i in range(pages):
        en = [_sentence(rng, rng.randint(5, 12)) for _ in range(blocks)]
        de, fr = [_translate(b, DE) for b in en], [_translate(b, FR) for b in en]
        gnome[f"usr/share/help/C/gnome-help/page{i}.page"] = _mallard(en)
        gnome[f"usr/share/help/de/gnome-help/page{i}.page"] = _mallard(de)
        gnome[f"usr/share/help/fr/gnome-help/page{i}.page"] = _mallard(fr if i % 5 else fr[:-1])  # misaligned
        en2 = [_sentence(rng, rng.randint(5, 12)) for _ in range(blocks)]
        handbook[f"usr/share/doc/debian-handbook/html/en-US/ch{i}.html"] = _html(en2)
        handbook[f"usr/share/doc/debian-handbook/html/de-DE/ch{i}.html"] = _html([_translate(b, DE) for b in en2])
        handbook[f"usr/share/doc/debian-handbook/html/fr-FR/ch{i}.html"] = _html([_translate(b, FR) for b in en2])
    return gnome, handbook


def make_mirror(root: Path, n_sources: int = 120, seed: int = 7, deb_override: dict | None = None) -> str:
    """Write the mirror under ``root``; return its ``file://`` URL."""
    rng = random.Random(seed)
    dist = root / "dists" / RELEASE
    (dist / "main/i18n").mkdir(parents=True, exist_ok=True)
    (dist / "main/binary-amd64").mkdir(parents=True, exist_ok=True)
    tr = {"en": [], "de": [], "fr": []}
    packages = []
    for s in range(n_sources):
        src = f"src{s:03d}"
        section = SECTIONS[s % len(SECTIONS)]
        base = [_sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(1, 3))]
        for b, suffix in enumerate(["", "-data"] if s % 3 == 0 else [""]):
            pkg = f"{src}{suffix}"
            paras = base + ([f"This package contains the {suffix[1:]} files."] if suffix else [])
            short = f"{rng.choice(WORDS)} {rng.choice(WORDS)} for {pkg}"
            en = _field(short, paras)
            md5 = _md5(en)
            tr["en"].append(f"Package: {pkg}\nDescription-md5: {md5}\nDescription-en: {en}\n")
            if s % 2 == 0:
                tr["de"].append(f"Package: {pkg}\nDescription-md5: {md5}\nDescription-de: "
                                f"{_field(_translate(short, DE), [_translate(p, DE) for p in paras])}\n")
            if s % 3 != 2:
                tr["fr"].append(f"Package: {pkg}\nDescription-md5: {md5}\nDescription-fr: "
                                f"{_field(_translate(short, FR), [_translate(p, FR) for p in paras])}\n")
            source = "" if pkg == src else f"Source: {src} (1.0-1)\n"
            packages.append(f"Package: {pkg}\n{source}Section: {section}\nDescription-md5: {md5}\n"
                            f"Filename: pool/main/s/{src}/{pkg}_1.0_all.deb\nSize: 100\nSHA256: {'0' * 64}\n")
    gnome, handbook = doc_files(rng)
    debs = {"gnome-user-docs": make_deb(gnome), "debian-handbook": make_deb(handbook)}
    debs.update(deb_override or {})
    for name, blob in debs.items():
        rel = f"pool/main/{name[0]}/{name}/{name}_1_all.deb"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
        packages.append(f"Package: {name}\nSection: doc\nDescription-md5: {_md5(name)}\nFilename: {rel}\n"
                        f"Size: {len(blob)}\nSHA256: {hashlib.sha256(blob).hexdigest()}\n")
    written = {
        "main/i18n/Translation-en.xz": lzma.compress("\n".join(tr["en"]).encode()),
        "main/i18n/Translation-de.bz2": bz2.compress("\n".join(tr["de"]).encode()),
        "main/i18n/Translation-fr": "\n".join(tr["fr"]).encode(),
        "main/binary-amd64/Packages.xz": lzma.compress("\n".join(packages).encode()),
    }
    sums = []
    for rel, blob in written.items():
        (dist / rel).write_bytes(blob)
        sums.append(f" {hashlib.sha256(blob).hexdigest()} {len(blob):>8} {rel}")
    (dist / "Release").write_text(f"Origin: Test\nCodename: {RELEASE}\nVersion: 1\nSHA256:\n" + "\n".join(sums) + "\n")
    return root.resolve().as_uri()


def signing_available() -> bool:
    return shutil.which("gpg") is not None and shutil.which("gpgv") is not None


def sign_mirror(root: Path, home: Path) -> Path:
    """Clear-sign ``dists/<release>/Release`` as ``InRelease`` with a new key kept in ``home``; return
    the public keyring file (the key's agent is stopped before returning)."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]
    dist = root / "dists" / RELEASE
    try:
        subprocess.run(gpg + ["--quick-gen-key", "metaxlm test archive <test@invalid>", "ed25519", "sign", "never"],
                       check=True, capture_output=True)
        subprocess.run(gpg + ["--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release")],
                       check=True, capture_output=True)
        keyring = home / "test-archive-keyring.gpg"
        subprocess.run(gpg + ["--output", str(keyring), "--export"], check=True, capture_output=True)
    finally:
        if shutil.which("gpgconf"):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    return keyring


# ------------------------------------------------------------------------------------ --size large

LO_ROOT = "usr/share/libreoffice/help"


def lo_page(lang: str, title: str, paras: list[tuple[str, str]]) -> bytes:
    """A LibreOffice help page as the real packages ship it: id-carrying headings and paragraphs, a
    hidden macOS variant inside a paragraph, boilerplate around."""
    body = "".join(f'<p id="{i}" class="paragraph" dir="auto">{t}'
                   f'<span hidden="true" class="MAC">(macOS variant)</span></p>\n' for i, t in paras)
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><title>{title}</title><script>var x=1;</script></head>'
            f'<body><header><p dir="auto">LibreOffice Help</p></header><div id="DisplayArea">'
            f'<h1 id="hd_id1000" dir="auto">{title}</h1>\n{body}</div></body></html>').encode()


def libreoffice_debs(rng: random.Random, pages: int = 40, paras: int = 5) -> tuple[dict[str, bytes], dict]:
    """``libreoffice-help-{en-us,de,fr}`` .debs and ``{page: [(id, en, de, fr)]}``. In every page one
    paragraph is left untranslated in German (identical to English) and one is empty in French."""
    files = {"en-US": {}, "de": {}, "fr": {}}
    truth = {}
    for n in range(pages):
        page = f"text/shared/guide/page{n:03d}.html"
        rows = []
        for k in range(paras):
            en = _sentence(rng, rng.randint(6, 12))
            de = en if k == 1 else _translate(en, DE)
            fr = "" if k == 2 else _translate(en, FR)
            rows.append((f"par_id{n:03d}{k:02d}", en, de, fr))
        truth[page] = rows
        title = f"Help page {n}"
        files["en-US"][f"{LO_ROOT}/en-US/{page}"] = lo_page("en-US", title, [(i, e) for i, e, _, _ in rows])
        files["de"][f"{LO_ROOT}/de/{page}"] = lo_page("de", _translate(title, DE), [(i, d) for i, _, d, _ in rows])
        files["fr"][f"{LO_ROOT}/fr/{page}"] = lo_page("fr", _translate(title, FR), [(i, f) for i, _, _, f in rows])
    debs = {"libreoffice-help-en-us": make_deb(files["en-US"]), "libreoffice-help-de": make_deb(files["de"]),
            "libreoffice-help-fr": make_deb(files["fr"])}
    return debs, truth


def roff_page(name: str, paras: list[str]) -> bytes:
    """A man(7) page using the usual macros, a code block, a table and a macro definition."""
    body = "\n.PP\n".join(paras)
    return (f'.\\" generated for tests\n.de URL\n\\fI\\\\$2\\fP\n..\n.TH {name.upper()} 1 2024 test\n'
            f".SH NAME\n{name} \\- a test command\n.SH DESCRIPTION\n.B {name}\n"
            f"reads \\fIfiles\\fP and writes \\(lqresults\\(rq.\n.PP\n{body}\n.nf\ncode line one\ncode two\n.fi\n"
            f".TS\nl l.\ncell\tcell\n.TE\n.SH SEE ALSO\n.BR ls (1)\n").encode()


def man_deb(locale: str, pages: dict[str, list[str]]) -> bytes:
    base = "usr/share/man/" + (f"{locale}/" if locale else "")
    return make_deb({f"{base}man1/{name}.1.gz": gzip.compress(roff_page(name, paras), mtime=0)
                     for name, paras in pages.items()})


def html_doc_deb(name: str, pages: list[list[str]], root: str = "usr/share/doc/") -> bytes:
    return make_deb({f"{root}{name}/html/p{i}.html":
                     ("<html><body>" + "".join(f"<p>{p}</p>" for p in ps) + "<pre>code()</pre></body></html>").encode()
                     for i, ps in enumerate(pages)})


def large_debs(rng: random.Random, plant: list[str] = ()) -> tuple[dict[str, bytes], dict]:
    """Every package of the test size ``large`` (see tests/test_data_large.py): LibreOffice help,
    man pages (German pages also hold the ``plant`` sentences), two English HTML packages (one
    installing its pages under ``usr/share/qt5/doc/``)."""
    debs, truth = libreoffice_debs(rng)
    prose = lambda k: [_sentence(rng, rng.randint(8, 14)) for _ in range(k)]  # noqa: E731
    shared = {f"cmd{i}": prose(3) for i in range(6)}
    debs["manpages"] = man_deb("", {**shared, "onlyen": prose(3)})  # cmd* are translated: not English corpus
    debs["manpages-de"] = man_deb("de", {k: [_translate(p, DE) for p in v] + list(plant) for k, v in shared.items()})
    debs["manpages-de-dev"] = man_deb("de", {"devpage": prose(2)})
    debs["manpages-fr"] = man_deb("fr", {k: [_translate(p, FR) for p in v] for k, v in shared.items()})
    debs["manpages-fr-dev"] = man_deb("fr", {"devpage": prose(2)})
    debs["pydoc-test"] = html_doc_deb("pydoc-test", [prose(4) for _ in range(5)])
    debs["qtdoc-test"] = html_doc_deb("qtdoc-test", [prose(3) for _ in range(3)], root="usr/share/qt5/doc/")
    return debs, truth
