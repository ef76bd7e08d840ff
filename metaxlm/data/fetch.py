"""``metaxlm data fetch``: everything the benchmark is built from, verified, in the cache.

Fetched for one release (``main``): ``InRelease`` (or ``Release``), ``Translation-en`` and one
``Translation-<lang>`` per target language, ``binary-amd64/Packages``, and the two documentation
packages ``debian-handbook`` and ``gnome-user-docs`` (extracted); with ``--size large`` also the
packages of :mod:`metaxlm.data.sizes` (verified, read as streams by the build). The result is described by
``<cache>/manifest-<release>.json``, which the build reads.

Trust: the SHA256 sums come from ``InRelease``, whose OpenPGP signature ``gpgv`` checks against the
archive keyring. Without ``gpgv``, the keyring or a signed ``InRelease`` the fetch is refused unless
``allow_unsigned`` (``--allow-unsigned``) is set; the manifest records ``signature_verified`` and
``allow_unsigned``. Every cached file is checked against its SHA256 before each use (remembered by
stat in ``<cache>/sha256-memo.json``); a corrupt one is downloaded again, or, offline, is a UserError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from metaxlm import paths, progress
from metaxlm.data import languages as L
from metaxlm.data.archive import (DEFAULT_KEYRING, INSTALL_HINT, HashMemo, download, ensure_writable,
                                  extract_deb, extraction_ok, gpg_verified_text, missing_signature_tools,
                                  open_index)
from metaxlm.data.deb822 import FileSum, parse_packages, parse_release
from metaxlm.data.sources import resolve_mirror
from metaxlm.errors import UserError
from metaxlm.rundir import atomic_write_json, read_json

DOC_PACKAGES = {
    "debian-handbook": ("usr/share/doc/debian-handbook/html/",),
    "gnome-user-docs": ("usr/share/help/",),
}
_COMPRESSIONS = (".xz", ".bz2", ".gz", "")


@dataclass(frozen=True)
class FetchConfig:
    languages: tuple[str, ...] = L.DEFAULT_LANGUAGES
    release: str = "bookworm"
    mirror: Optional[str] = None
    cache: Optional[Path] = None
    refresh: bool = False  # download InRelease again even when one is cached
    keyring: Optional[Path] = DEFAULT_KEYRING
    # without gpgv, the keyring or a signed InRelease: go on with unauthenticated sums (else refuse)
    allow_unsigned: bool = False
    apt_root: Path = Path("/etc/apt")
    arch: str = "amd64"
    doc_packages: tuple[str, ...] = tuple(DOC_PACKAGES)
    # packages read as streams by the build (--size large): downloaded and verified, not extracted
    stream_packages: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "languages", L.parse_list(self.languages))
        if not self.release or "/" in self.release:
            raise ValueError(f"release {self.release!r} is not a suite name like bookworm")


def archive_cache(cache: Path | None) -> Path:
    return Path(cache).expanduser() if cache else paths.cache_dir() / "archive"


def manifest_path(cache: Path, release: str) -> Path:
    return cache / f"manifest-{release}.json"


def _pick(sums: dict[str, FileSum], stem: str) -> str | None:
    for ext in _COMPRESSIONS:
        if stem + ext in sums:
            return stem + ext
    return None


def fetch_sources(languages=None, release: str = "bookworm", mirror: str | None = None,
                  cache: str | Path | None = None, **options) -> Path:
    """Fetch (or reuse) every source file; return the archive cache directory holding the manifest."""
    from metaxlm.config import build

    cfg = build(FetchConfig, {"languages": list(L.parse_list(languages)), "release": release, "mirror": mirror,
                              "cache": cache, **options}, where="fetch_sources")
    return fetch(cfg)


def fetch(cfg: FetchConfig) -> Path:
    root = archive_cache(cfg.cache)
    ensure_writable(root)
    dists = f"dists/{cfg.release}"
    cached = manifest_path(root, cfg.release)
    old = read_json(cached) if cached.exists() else {}
    memo = HashMemo(root)
    if (not cfg.refresh and (old.get("signature_verified") is True or cfg.allow_unsigned)
            and _complete(root, old, cfg, memo)):
        memo.save()
        return root  # everything was fetched before and every file still has its SHA256: no network
    mirror = old.get("mirror") if old and not cfg.mirror and not cfg.refresh else None
    mirror = mirror or resolve_mirror(cfg.release, cfg.mirror, cfg.apt_root)

    def url(rel: str) -> str:
        return f"{mirror}/{rel}"

    # 1. the release index: reused from the cache unless --refresh
    inrel = root / dists / "InRelease"
    rel_file = root / dists / "Release"
    if cfg.refresh:
        inrel.unlink(missing_ok=True)
        rel_file.unlink(missing_ok=True)
    index = inrel if inrel.exists() else rel_file if rel_file.exists() else None
    if index is None:
        try:
            index = download(url(f"{dists}/InRelease"), inrel)
        except FileNotFoundError:
            try:
                index = download(url(f"{dists}/Release"), rel_file)
            except FileNotFoundError:
                raise UserError(f"the archive at {mirror} has no release {cfg.release!r} "
                                f"(no {dists}/InRelease or Release): check --release and --mirror") from None
    signed = _check_signature(index, cfg, mirror, dists)  # the verified text, or None when allowed unsigned
    verified = signed is not None
    text = signed if verified else index.read_text(encoding="utf-8", errors="replace")
    fields, sums = parse_release(text, str(index))

    # 2. indices listed in the release file
    wanted: dict[str, str] = {}
    for lang in ("en",) + cfg.languages:
        stem = f"main/i18n/Translation-{L.debian(lang)}"
        name = _pick(sums, stem)
        if name is None:
            have = sorted({p.split("Translation-")[1].split(".")[0] for p in sums if "main/i18n/Translation-" in p})
            raise UserError(f"release {cfg.release} has no translation file for language {lang!r} "
                            f"({stem}); available: {', '.join(have)}")
        wanted[f"translation-{lang}"] = name
    pk = _pick(sums, f"main/binary-{cfg.arch}/Packages")
    if pk is None:
        raise UserError(f"release {cfg.release} lists no main/binary-{cfg.arch}/Packages index")
    wanted["packages"] = pk

    files: dict[str, dict] = {}
    total = sum(sums[n].size for n in wanted.values())
    with progress.task(f"fetch {cfg.release} indices", total=total) as t:
        for role, name in wanted.items():
            s = sums[name]
            download(url(f"{dists}/{name}"), root / dists / name, s.sha256, s.size, progress=t.advance, memo=memo)
            files[role] = {"path": f"{dists}/{name}", "sha256": s.sha256, "size": s.size}

    # 3. documentation packages from the pool, found through Packages
    debs = {}
    wanted_debs = set(cfg.doc_packages) | set(cfg.stream_packages)
    for p in parse_packages(open_index(root / files["packages"]["path"]), files["packages"]["path"]):
        if p.package in wanted_debs and p.package not in debs:
            debs[p.package] = p
    missing = [d for d in (*cfg.doc_packages, *cfg.stream_packages) if d not in debs]
    if missing:
        raise UserError(f"release {cfg.release} has no package {missing[0]!r} in main/binary-{cfg.arch}/Packages"
                        f"{'' if missing[0] in cfg.doc_packages else ' (needed by --size large for its language)'}")
    with progress.task("fetch documentation packages", total=sum(d.size for d in debs.values())) as t:
        for name in cfg.doc_packages:
            p = debs[name]
            if not p.filename.startswith("pool/") or ".." in p.filename or len(p.sha256) != 64:
                raise UserError(f"Packages entry for {name} has a bad Filename or SHA256")
            deb = download(url(p.filename), root / p.filename, p.sha256, p.size, progress=t.advance, memo=memo)
            target = root / "extract" / f"{name}-{p.sha256[:16]}"
            extract_deb(deb, target, DOC_PACKAGES.get(name, ("usr/share/",)), (".page", ".html"), memo=memo,
                        deb_sha256=p.sha256)
            files[f"deb-{name}"] = {"path": p.filename, "sha256": p.sha256, "size": p.size,
                                    "extracted": str(target.relative_to(root))}
    streamed = [d for d in cfg.stream_packages if d not in cfg.doc_packages]
    with progress.task("fetch corpus packages", total=sum(debs[d].size for d in streamed)) as t:
        for name in streamed:
            p = debs[name]
            if not p.filename.startswith("pool/") or ".." in p.filename or len(p.sha256) != 64:
                raise UserError(f"Packages entry for {name} has a bad Filename or SHA256")
            download(url(p.filename), root / p.filename, p.sha256, p.size, progress=t.advance, memo=memo)
            files[f"deb-{name}"] = {"path": p.filename, "sha256": p.sha256, "size": p.size}

    manifest = {
        "release": cfg.release, "mirror": mirror, "codename": fields.get("Codename"),
        "version": fields.get("Version"), "date": fields.get("Date"),
        "release_file": index.name, "signature_verified": verified, "allow_unsigned": cfg.allow_unsigned,
        "languages": list(cfg.languages), "files": files,
    }
    # Merge with languages fetched before so a later fetch for fewer languages keeps the others.
    if old.get("release") == cfg.release and old.get("files", {}).get("packages") == files["packages"]:
        for role, entry in old.get("files", {}).items():
            if (role.startswith(("translation-", "deb-")) and role not in files
                    and (root / entry["path"]).exists()):
                files[role] = entry
        manifest["languages"] = sorted({*old.get("languages", []), *cfg.languages})
    atomic_write_json(cached, manifest)
    memo.save()
    return root


def _check_signature(index: Path, cfg: FetchConfig, mirror: str, dists: str) -> str | None:
    """The signed text of ``index`` when it is an InRelease with a good signature (a bad one is a
    UserError); None when it cannot be checked and ``cfg.allow_unsigned``; otherwise a UserError
    saying what is missing and how to get it."""
    if index.name != "InRelease":
        missing = (f"the archive at {mirror} offers no signed {dists}/InRelease, only an unsigned Release "
                   f"(cached as {index}; --refresh fetches it again)")
        fix = "use a mirror that serves InRelease"
    else:
        tools = missing_signature_tools(cfg.keyring)
        missing = tools and f"{tools} not found"
        fix = f"install with `{INSTALL_HINT}` (or give --keyring FILE)"
    if missing is None:
        return gpg_verified_text(index, cfg.keyring)
    if cfg.allow_unsigned:
        return None
    raise UserError(f"cannot check the OpenPGP signature of the release index: {missing}; {fix}, or pass "
                    "--allow-unsigned to use its SHA256 sums unauthenticated")


def _complete(root: Path, manifest: dict, cfg: FetchConfig, memo: HashMemo) -> bool:
    """True when ``manifest`` covers ``cfg`` and every file it lists is in the cache with its size and
    SHA256 (and every extraction holds exactly its recorded files)."""
    if not manifest or manifest.get("release") != cfg.release:
        return False
    files = manifest.get("files", {})
    roles = ["packages", "translation-en", *(f"translation-{lang}" for lang in cfg.languages),
             *(f"deb-{d}" for d in (*cfg.doc_packages, *cfg.stream_packages))]
    for role in roles:
        f = files.get(role)
        p = root / f["path"] if f else None
        if p is None or not p.is_file() or p.stat().st_size != f["size"]:
            return False
    for role in roles:  # sizes first (cheap), then the hashes
        f = files[role]
        if memo.sha256(root / f["path"]) != f.get("sha256"):
            return False
        if "extracted" in f and not extraction_ok(root / f["extracted"], memo, f["sha256"]):
            return False
    return True


def load_manifest(root: Path, release: str) -> dict:
    p = manifest_path(root, release)
    if not p.exists():
        raise UserError(f"nothing fetched for {release} in {root}: run `metaxlm data fetch` first")
    return read_json(p)
