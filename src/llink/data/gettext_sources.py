"""UI strings from the gettext catalogues of other Debian packages (issue 27).

Many languages bookworm has no LibreOffice help or Firefox langpack for (Burmese, Amharic,
Sinhala, Dzongkha, ...) are still translated in desktop software, whose `.mo` catalogues ship in
`/usr/share/locale/<lang>/LC_MESSAGES/`. The English side is the msgid, the program's own source
string, as for LibreOffice's UI. The list below is fixed (a rebuild reads the same packages) and
was chosen on bookworm (`apt-get download` + `dpkg-deb -c`) for wide coverage of non-Latin-script
languages at a modest download (49 MB in all): each ships catalogues for several of my, am, si,
ka, ta, th, dz, hi and km; iso-codes, GTK 3, GNOME Control Center, VLC and Pidgin for most.

Left out on purpose: libgweather-4-common and iso-codes' ISO 639-3 and 3166-2 catalogues
(thousands of place and language names, transliterations that would swamp the UI text);
gnupg-l10n, libc-l10n, util-linux-locales and gparted (none of these languages); xkb-data
(Georgian only). KDE was not tried: its catalogues are spread over hundreds of packages.

Each package belongs to a project: the translators who translate it. When a language has no
Firefox langpack, test is held out by whole project, so it measures transfer to software whose
translators the training data never saw. GTK, GLib and NetworkManager are translated by GNOME's
teams, and MATE forked GNOME 2 with its translations (many strings are still near-identical), so
all of them count as one project, "gnome".
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from llink.data.io import Pair, normalize

GETTEXT_PACKAGES: dict[str, str] = {
    "iso-codes": "iso-codes",  # language, country, currency and script names
    # GNOME, its toolkit, its network manager, and MATE (GNOME 2's fork)
    "libgtk-3-common": "gnome", "libgtk2.0-common": "gnome", "libglib2.0-data": "gnome",
    "gnome-control-center-data": "gnome", "nautilus-data": "gnome", "gedit-common": "gnome",
    "evince-common": "gnome", "evolution-data-server-common": "gnome", "network-manager": "gnome",
    "caja-common": "gnome", "pluma-common": "gnome", "atril-common": "gnome", "engrampa-common": "gnome",
    "eom-common": "gnome", "mate-panel-common": "gnome", "mate-desktop-common": "gnome",
    # Xfce
    "thunar-data": "xfce", "xfce4-panel": "xfce", "xfce4-settings": "xfce", "xfdesktop4-data": "xfce",
    "libxfce4ui-common": "xfce",
    # single applications with translation teams of their own
    "vlc-l10n": "vlc", "pidgin-data": "pidgin", "synaptic": "synaptic",
}
# Thousands of proper names (every ISO 639-3 language, every country subdivision): transliterations
# that would swamp the UI text. iso-codes keeps ISO 639-2 languages, countries, currencies, scripts.
_SKIP_DOMAINS = {("iso-codes", "iso_3166-2"), ("iso-codes", "iso_639-3"), ("iso-codes", "iso_639_3")}

# Entries that hold the translators' names, not a translation.
_CREDITS = {"translator-credits", "translator_credits", "translators", "Your names", "Your emails",
            "NAME OF TRANSLATORS", "EMAIL OF TRANSLATORS"}
# printf, Qt (%1), Python/ICU ({name}), shell (${x}) placeholders, markup and entities.
_PLACEHOLDER = re.compile(r"%(?:\d+\$)?[-+ #0']*\d*(?:\.\d+)?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGcspSn@%]"
                          r"|%\d+|\{[^{}]*\}|\$\{?\w+\}?|<[^<>]*>|&\w+;")


# --- GNU .mo catalogues -----------------------------------------------------------------------


def read_mo(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) from a GNU .mo file; msgid keeps its `context\\x04` prefix."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    _, _, n, ids_at, strs_at = struct.unpack(endian + "5I", data[:20])

    def string(table: int, i: int) -> str:
        length, offset = struct.unpack(endian + "2I", data[table + 8 * i: table + 8 * i + 8])
        return data[offset: offset + length].decode("utf-8", errors="replace")

    return [(string(ids_at, i), string(strs_at, i)) for i in range(n)]


# "~" marks LibreOffice mnemonics, "_" those of .ui dialogs and GTK; translators often append them
# as "(~F)". Removed so the pair is plain text, as a user would read it.
_MNEMONIC_SUFFIX = re.compile(r"\s*\([~_][^\W_]\)")
_TILDE = re.compile(r"~(?=[^\W_])")
_UNDERSCORE = re.compile(r"(?<![\w])_(?=[^\W_])|(?<=[^\W_])_(?=[^\W_])")
# Qt's "&File" (VLC); "&&", "& " and entities such as "&amp;" are not accelerators.
_AMPERSAND_SUFFIX = re.compile(r"\s*\(&[^\W_]\)")
_AMPERSAND = re.compile(r"(?<!&)&(?=[^\W_])(?![A-Za-z]+;)")


def strip_mnemonics(text: str, dialog: bool) -> str:
    text = _TILDE.sub("", _MNEMONIC_SUFFIX.sub("", text))
    # Only a lone "_" in a dialog string is a mnemonic; identifiers like a_b_c are left alone.
    if dialog and text.count("_") == 1:
        text = _UNDERSCORE.sub("", text)
    return text


def _plain(text: str) -> str:
    text = strip_mnemonics(text, dialog=True)
    if text.count("&") == 1:
        text = _AMPERSAND.sub("", _AMPERSAND_SUFFIX.sub("", text))
    return normalize(text)


def has_words(text: str) -> bool:
    """Whether anything but placeholders and markup is left: "%s: %d" is not a phrase."""
    return any(ch.isalpha() for ch in _PLACEHOLDER.sub("", text))


# --- packages ---------------------------------------------------------------------------------


def catalogues(root: Path, lang: str) -> list[Path]:
    """The package's .mo files for `lang`: locale folder `lang` or `lang_CC` (am_ET, my_MM, ta_LK);
    `@variant` folders (another script or orthography) are not the language's default."""
    folder = re.compile(rf"^{re.escape(lang)}(?:_[A-Z]{{2}})?$")
    return sorted(mo for mo in root.glob("usr/share/locale/*/LC_MESSAGES/*.mo") if folder.match(mo.parts[-3]))


def catalogue_pairs(root: Path, package: str, lang: str) -> list[Pair]:
    """(translation, msgid) pairs of one package, mnemonics removed; `source` is
    `gettext:<package>/<domain>`. The caller applies the script filter and de-duplicates."""
    out = []
    for mo in catalogues(root, lang):
        if (package, mo.stem) in _SKIP_DOMAINS:
            continue
        for msgid, msgstr in read_mo(mo):
            if not msgid or not msgstr:
                continue  # the header entry, or untranslated
            english = msgid.rpartition("\x04")[2].split("\x00")[0]  # no context; singular form
            if english.strip() in _CREDITS:
                continue
            en, src = _plain(english), _plain(msgstr.split("\x00")[0])
            if has_words(en):
                out.append(Pair(src, en, f"gettext:{package}/{mo.stem}"))
    return out


def project_of(source: str) -> str:
    """`gettext:<package>/<domain>` -> the package's project."""
    return GETTEXT_PACKAGES.get(package_of(source), package_of(source))


def package_of(source: str) -> str:
    return source.split(":", 1)[1].split("/", 1)[0]


# --- licences ---------------------------------------------------------------------------------


_STANZA = re.compile(r"\n\s*\n")
# Free-form files: each GNU licence named ("GNU Lesser General Public License", "GNU/GPL").
_FREE_FORM = re.compile(r"GNU(?:/|\s+)(?:(Lesser|Library)\s+General\s+Public\s+Licen[cs]e|(L)?GPL\b"
                        r"|General\s+Public\s+Licen[cs]e|(Free\s+Documentation)\s+Licen[cs]e)")
# Its version: stated right after the name, before any other licence is mentioned.
_VERSION = re.compile(r"(?:(?!GNU|GFDL|Licen|\n\s*\n).){0,120}?[Vv]ersion\s+(\d(?:\.\d)?)"
                      r"(?:.{0,80}?(later\s+version|or\s+later))?", re.S)


def licence(root: Path, package: str) -> str:
    """Short licence name from the package's /usr/share/doc/<pkg>/copyright. Machine-readable
    files: the `Files: po/*` stanza (the translations), else `Files: *`, else the stanza naming
    po/ files, else the licence most stanzas give. Free-form files: each GNU licence the text
    names, in order, with the version stated next to it."""
    path = root / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return "not in the .deb (see the source package's copyright)"
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.startswith("Format:"):
        stanzas = []
        for st in _STANZA.split(text):
            files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", st, re.M)
            name = re.search(r"^License:[ \t]*(\S.*)$", st, re.M)
            if files and name:
                stanzas.append((files.group(1).split(), name.group(1).strip()))
        for wanted in (lambda fs: "po/*" in fs, lambda fs: "*" in fs,
                       lambda fs: any(f.startswith("po/") for f in fs)):
            if hit := next((lic for fs, lic in stanzas if wanted(fs)), None):
                return hit
        if stanzas:
            names = [lic for _, lic in stanzas]
            return max(names, key=names.count)
    found: dict[str, str] = {}
    for m in _FREE_FORM.finditer(text):
        family = "GFDL" if m.group(3) else "LGPL" if (m.group(1) or m.group(2)) else "GPL"
        if v := _VERSION.match(text, m.end()):
            found[family] = found.get(family) or f"{family}-{v.group(1)}{'+' if v.group(2) else ''}"
        else:
            found.setdefault(family, "")
    names = [version or family for family, version in found.items()]
    return " / ".join(names) if names else "unknown (see the package's copyright file)"
