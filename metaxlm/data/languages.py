"""One language-code scheme inside metaxlm (ISO 639-1) and the archive's spellings of it."""

from __future__ import annotations

from metaxlm.errors import UserError

DEFAULT_LANGUAGES = ("de", "fr", "it", "pt", "ru", "ja", "es")

# metaxlm code -> Debian locale (DDTP Translation files, GNOME help directories)
_DEBIAN = {"pt": "pt_BR", "zh": "zh_CN"}


def normalize(lang: str) -> str:
    """``pt_BR``/``pt-BR``/``pt`` -> ``pt``; ``de_DE`` -> ``de``. Unknown shapes are a UserError."""
    code = lang.strip().replace("-", "_").split("_")[0].lower()
    if not code.isalpha() or not 2 <= len(code) <= 3:
        raise UserError(f"language {lang!r} is not a language code: use codes like de, fr, pt")
    return code


def parse_list(value: str | None | tuple | list) -> tuple[str, ...]:
    """A comma-separated list (or sequence) of codes, normalized, de-duplicated, ``en`` removed."""
    if value is None:
        return DEFAULT_LANGUAGES
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not str(item).strip():
            continue
        code = normalize(str(item))
        if code != "en" and code not in out:
            out.append(code)
    if not out:
        raise UserError("no target language given: pass e.g. --languages de,fr")
    return tuple(out)


def debian(lang: str) -> str:
    """The locale the archive uses for a metaxlm code (``pt`` -> ``pt_BR``)."""
    return _DEBIAN.get(lang, lang)


def handbook_dir(lang: str, available: list[str]) -> str | None:
    """The debian-handbook HTML directory for ``lang`` among ``available`` (``de-DE``, ``pt-BR``...)."""
    if lang == "en":
        return "en-US" if "en-US" in available else None
    want = debian(lang).replace("_", "-")
    if want in available:
        return want
    matches = sorted(d for d in available if d.split("-")[0].lower() == lang)
    return matches[0] if len(matches) == 1 else None
