"""Pre-flight for `llink data build`: which Debian package families exist for a language.

Asked of the local apt lists (`apt-cache policy`, no download), so a language bookworm lacks
fails at once with what is missing, instead of after a download error that suggests
`apt-get update` (issue 27: bookworm has no Lao package at all, only a Firefox langpack for
Burmese, only LibreOffice UI for Amharic).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from llink.errors import LlinkError

HELP_EN_PACKAGE = "libreoffice-help-en-us"
FIREFOX_EN_PACKAGE = "firefox-esr"
# Mozilla names some locales by region too (firefox-esr-l10n-hi-in).
FIREFOX_LOCALES = {"hi": "hi-in", "pa": "pa-in", "gu": "gu-in", "ne": "ne-np"}
FAMILIES = ("help", "ui", "firefox")

_CODE = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class Packages:
    help: str
    help_en: str
    ui: str
    firefox: str
    firefox_en: str

    @classmethod
    def for_lang(cls, lang: str) -> "Packages":
        return cls(f"libreoffice-help-{lang}", HELP_EN_PACKAGE, f"libreoffice-l10n-{lang}",
                   f"firefox-esr-l10n-{FIREFOX_LOCALES.get(lang, lang)}", FIREFOX_EN_PACKAGE)

    def names(self) -> list[str]:
        return [self.help, self.help_en, self.ui, self.firefox, self.firefox_en]

    def family(self, name: str) -> list[str]:
        """The packages one family needs: the language's own, and the English side if any."""
        return {"help": [self.help, self.help_en], "ui": [self.ui],
                "firefox": [self.firefox, self.firefox_en]}[name]


@dataclass
class Availability:
    lang: str
    packages: Packages
    versions: dict[str, str]  # every package asked about that apt has a candidate for
    found: list[str] = field(default_factory=list)  # families whose packages all exist
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        def names(fams):
            return ", ".join(self.packages.family(f)[0] for f in fams) or "none"
        return f"{self.lang}: found {names(self.found)}; missing {names(self.missing)}"


def check_lang(lang: str, known: dict) -> None:
    """Refuse codes that cannot name a Debian l10n package or have no script table."""
    if lang == "en":
        raise LlinkError("--lang en: English is the other side of every pair; "
                         "name the non-English language (km, my, am, si, ...)")
    if not _CODE.match(lang):
        raise LlinkError(f"--lang {lang!r} is not a language code: expected 2-3 lowercase letters "
                         "(ISO 639-1 where one exists, as Debian's l10n packages name them: km, my, am)")
    if lang not in known:
        raise LlinkError(f"no script range for language {lang!r}; known: {', '.join(sorted(known))} "
                         "(add one to SCRIPT_RANGES in llink/data/scripts.py)")


def apt_candidates(names: list[str]) -> dict[str, str]:
    """Candidate version of each name the local apt lists know; absent names are left out."""
    if shutil.which("apt-cache") is None:
        raise LlinkError("`apt-cache` not found: building the corpus needs a Debian/Ubuntu system "
                         "with apt (the committed data/ files need no rebuild)")
    res = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True)
    out, name = {}, None
    for line in res.stdout.splitlines():
        if not line.startswith(" ") and line.endswith(":"):
            name = line[:-1]
        elif name and line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version != "(none)":
                out[name] = version
    return out


def preflight(lang: str, extra: list[str] = (), query=None) -> Availability:
    """Which families exist for `lang` (and which of `extra` packages), before any download.
    `query` (names -> {name: version}) defaults to apt_candidates, looked up at call time."""
    pkgs = Packages.for_lang(lang)
    versions = (query or apt_candidates)(pkgs.names() + list(extra))
    if not any(n in versions for n in (HELP_EN_PACKAGE, FIREFOX_EN_PACKAGE, *extra)):
        # Not even the English sides: the lists are empty, and only here is apt-get update the fix.
        raise LlinkError(f"apt-cache knows no candidate for {HELP_EN_PACKAGE} or {FIREFOX_EN_PACKAGE}: "
                         "the package lists are empty or not Debian bookworm; run `apt-get update` "
                         "(with bookworm main + security sources) and try again")
    avail = Availability(lang, pkgs, versions)
    for fam in FAMILIES:
        (avail.found if all(n in versions for n in pkgs.family(fam)) else avail.missing).append(fam)
    return avail


def not_in_debian(lang: str, searched: int | None) -> LlinkError:
    """`searched`: how many gettext packages were looked in (None: not searched, --gettext no)."""
    pkgs = Packages.for_lang(lang)
    families = f"`{lang}`: not in Debian bookworm: no {pkgs.help}, {pkgs.ui}, {pkgs.firefox}"
    if searched is None:
        return LlinkError(f"{families} (gettext catalogues not searched: --gettext no)")
    return LlinkError(f"{families}, and no gettext catalogues for it in the packages searched ({searched} "
                      "packages, listed in llink/data/gettext_sources.py)")
