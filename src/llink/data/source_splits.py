"""Held-out splits for a language that lacks a package family (issue 27).

The principle of the full build is kept: dev and test are held out by whole source, never by
sampling sentences, so a model cannot pass them by memorising neighbouring strings. Without a
Firefox langpack, test is a seeded sample from whole gettext *projects*, the fewest that give
enough (every package of the project, every string of those packages, leaves train); without
LibreOffice help, dev is made of whole catalogues outside test's projects (gettext packages and
LibreOffice's UI .mo files, as help files are whole units today).
"""

from __future__ import annotations

import random

from llink.data.gettext_sources import GETTEXT_PACKAGES
from llink.data.io import Pair
from llink.errors import LlinkError

# A dev package may take dev to at most this many times dev_min: one huge catalogue (GTK, Pidgin)
# would otherwise leave train little, while several smaller ones reach the minimum.
_DEV_OVERSHOOT = 2


def sample_eligible(pairs: list[Pair], size: int, seed: int, eligible) -> list[Pair]:
    """Up to `size` eligible pairs by a seeded shuffle, every foreign and English string once."""
    # Sorted first so the sample depends on the seed only, not on archive member order.
    pool = sorted((p for p in pairs if eligible(p)), key=lambda p: (p.source, p.src, p.en))
    random.Random(seed).shuffle(pool)
    out, seen = [], set()
    for p in pool:
        if p.src in seen or p.en in seen:
            continue
        seen.update((p.src, p.en))
        out.append(p)
        if len(out) == size:
            break
    return out


def too_little(lang: str, split: str, found: str, option: str, value: int) -> LlinkError:
    return LlinkError(f"{lang}: too little for the {split} split: {found}; lower --{option} "
                      f"(now {value}) or accept that {lang} cannot have this split")


def choose_test_projects(gettext: dict[str, list[Pair]], size: int, seed: int, eligible,
                         lang: str) -> tuple[list[Pair], list[str]]:
    """The fewest whole projects whose eligible pairs reach `size` (largest first, so train loses
    as little as possible); a seeded sample of them, and every package of the chosen projects
    (all of which leave train)."""
    project = {pkg: GETTEXT_PACKAGES.get(pkg, pkg) for pkg in gettext}
    by_project: dict[str, list[Pair]] = {}
    for pkg, pairs in gettext.items():
        by_project.setdefault(project[pkg], []).extend(pairs)
    n_eligible = {proj: len(sample_eligible(pairs, len(pairs), seed, eligible)) for proj, pairs in by_project.items()}
    chosen: list[str] = []
    test: list[Pair] = []
    for proj in sorted(by_project, key=lambda x: (-n_eligible[x], x)):
        chosen.append(proj)
        test = sample_eligible([p for c in chosen for p in by_project[c]], size, seed, eligible)
        if len(test) == size:
            return test, [pkg for pkg in gettext if project[pkg] in chosen]
    raise too_little(lang, "test", f"no Firefox langpack, and the gettext catalogues of all "
                     f"{len(by_project)} projects ({', '.join(sorted(by_project))}) give {len(test)} "
                     f"test-eligible pairs (need {size})", "test_size", size)


def choose_dev_units(units: dict[str, list[Pair]], banned: set[str], dev_min: int, seed: int,
                     lang: str) -> list[str]:
    """Whole catalogues (a gettext package, or one LibreOffice UI .mo) by a seeded shuffle until
    >= dev_min fresh pairs, passing over any that would take dev past _DEV_OVERSHOOT x dev_min
    while others can still do it."""
    names = sorted(units)
    if not names:
        raise LlinkError(f"{lang}: too little for the dev split: no LibreOffice help, and test took every "
                         "catalogue there is; lower --test_size so that test takes fewer projects")
    random.Random(seed).shuffle(names)
    chosen, seen = [], set()
    for capped in (True, False):
        for name in names:
            if len(seen) >= dev_min:
                return chosen
            if name in chosen:
                continue
            fresh = {(p.src, p.en) for p in units[name] if p.src not in banned and p.en not in banned} - seen
            if fresh and not (capped and len(seen) + len(fresh) > _DEV_OVERSHOOT * dev_min):
                chosen.append(name)
                seen |= fresh
    if len(seen) < dev_min:
        raise too_little(lang, "dev", f"no LibreOffice help, and the {len(names)} catalogues outside "
                         f"test give {len(seen)} pairs (need {dev_min})", "dev_min", dev_min)
    return chosen


def cap(pairs: list[Pair], limit: int | None, seed: int) -> list[Pair]:
    """A seeded sample of at most `limit` pairs, in their original order (files stay small)."""
    if not limit or len(pairs) <= limit:
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]
