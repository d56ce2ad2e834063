"""Choose which concepts the cross-lingual glossary (rag/data/glossary.tsv) covers, and check the file.

The glossary is a hand-translated English/French/German word list used by rag/crosslingual.py to bridge
languages when retrieval is lexical only. Its *choice of words* must not be tuned to any evaluation set, so
it is made reproducibly from a general-purpose frequency list:

1. take wordfreq's English "best" list (top SCAN_SIZE words by frequency; wordfreq 3.x, whose data is
   CC BY-SA 4.0 by Robyn Speer et al. — only the choice of words derives from it, no frequencies are copied);
2. keep alphabetic words of 3+ letters that are not English function words (STOPWORDS below), not in the
   hand-kept SKIP list (profanity, internet slang, given names, interjections);
3. group inflections by their English Snowball stem (year/years -> one concept) and keep the first
   CONCEPTS groups in frequency order.

A human then writes the French and German translations of each group (one glossary row per concept; a few
groups, mostly names spelled the same in all three languages, are left out and listed in UNTRANSLATED).
Interrogative and quantity words, common multi-word expressions and a short list of general domain terms
are added in their own section regardless of rank.

Usage (not run by tests; needs `pip install wordfreq`, which is NOT a project dependency):
    python eval/benchmarks/build_glossary.py candidates   # print the candidate groups, one per line
    python eval/benchmarks/build_glossary.py check        # candidates neither translated nor in UNTRANSLATED
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCAN_SIZE = 40000
CONCEPTS = 6000  # 2,600 at first (glossary Section 1), then 6,000 (Section 3)
UNTRANSLATED_FILE = Path(__file__).resolve().parent / "data" / "glossary_untranslated.txt"
GLOSSARY = Path(__file__).resolve().parents[2] / "rag" / "data" / "glossary.tsv"


def _words(text: str) -> list[str]:
    return text.split()


# English function words: pronouns, determiners, auxiliaries, prepositions, conjunctions, contractions.
STOPWORDS = frozenset(
    _words(
        """
        a about above after again against all am an and any are aren't as at be because been before being
        below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
        down during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's
        her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it
        it's its itself let's me more most mustn't my myself no nor not of off on once only or other ought
        our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such
        than that that's the their theirs them themselves then there there's these they they'd they'll
        they're they've this those through to too under until up very was wasn't we we'd we'll we're we've
        were weren't what what's when when's where where's which while who who's whom why why's with won't
        would wouldn't you you'd you'll you're you've your yours yourself yourselves also just may might
        must shall will would yet its upon via per etc else ever within without whether either neither
        unless although though however thus hence therefore whose whatever whenever wherever whichever
        whoever anyone anything anybody someone something somebody everyone everything everybody nobody
        nothing none onto toward towards across along among amongst around behind beside besides beyond
        despite inside outside since till unto
        """
    )
)

# Words dropped by hand: profanity, chat slang, given names, interjections, letters, abbreviations whose
# translation is not a word. Kept short and explicit so the selection stays reviewable.
SKIP = frozenset(
    _words(
        """
        shit fuck fucking damn lol omg yeah okay hey wow haha ass bitch guys guy gonna wanna gotta dude yay
        hmm ugh shall aww lmao wtf btw idk tbh thx pls plz ain't fucked sex sexy porn nigga dick pussy cock
        john david michael james robert mike chris paul mark peter george steve tom bill jack joe ben sam
        ryan jim tony jason ron alex matt jeff scott kevin brian andrew eric dan charles lee jones smith
        williams brown johnson taylor davis wilson martin miller jesus christ trump obama clinton bush
        """
    )
)

# Candidate groups reviewed and left untranslated (they do not change the selection above): proper names spelled
# the same in the three languages (cities, people, brands), abbreviations, slang and bare prefixes (pre, non, anti). `check` reports them apart.
UNTRANSLATED = frozenset(
    _words(
        """
        york washington san facebook texas william google thomas chicago twitter louis http richard los mary
        van inc florida frank dont henry angeles harry ray boston jersey max youtube bob iii daniel virginia
        ohio don kim kinda nick jackson adam bbc amazon pakistan michigan nfl francisco hong manchester
        sydney carolina edward hollywood joseph thats jordan tim ford stephen kong santa toronto howard
        lewis sarah simon bullshit elizabeth miami colorado donald georgia alan luke mac dave illinois jimmy
        kelly victoria andy charlie fbi iphone liverpool android dallas houston https jane morgan
        philadelphia suck vegas walker anthony arthur tho trans ups alexander bro columbia crap dean hop nah
        pennsylvania cambridge disney francis gary nba roger ross seattle yep allen clark jay oxford anna
        atlanta gordon kansas matthew patrick phil wayne anderson austin diego doc jean melbourne microsoft
        walter wisconsin ann cant carter chelsea detroit johnny josh rep rio rob singapore asshole bruce
        kate maria billy foster fuckin gen instagram iowa nigeria robin russell bang del eve ian justin rick
        pre non sub multi semi mini plus pro super anti
        """
    )
)


def candidates() -> list[list[str]]:
    """The English word groups (first word = most frequent form), in frequency order."""
    import snowballstemmer
    import wordfreq

    stemmer = snowballstemmer.stemmer("english")
    groups: dict[str, list[str]] = {}
    for word in wordfreq.top_n_list("en", SCAN_SIZE):
        if not word.isascii() or not word.isalpha() or len(word) < 3:
            continue
        if word in STOPWORDS or word in SKIP:
            continue
        stem = stemmer.stemWord(word)
        if stem in groups:
            groups[stem].append(word)
        elif len(groups) < CONCEPTS:
            groups[stem] = [word]
    return list(groups.values())


def glossary_english_stems() -> set[str]:
    import snowballstemmer

    stemmer = snowballstemmer.stemmer("english")
    stems: set[str] = set()
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        english = line.split("\t")[0]
        for form in english.split(","):
            stems.add(stemmer.stemWord(form.strip().lower()))
    return stems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["candidates", "check"])
    args = parser.parse_args(argv)
    groups = candidates()
    if args.command == "candidates":
        for rank, group in enumerate(groups, 1):
            print(f"{rank}\t{','.join(group)}")
        return 0
    import snowballstemmer

    stemmer = snowballstemmer.stemmer("english")
    covered = glossary_english_stems()
    uncovered = [group[0] for group in groups if stemmer.stemWord(group[0]) not in covered]
    left_out = UNTRANSLATED | {
        line.strip()
        for line in UNTRANSLATED_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    missing = [word for word in uncovered if word not in left_out]
    print(
        f"{len(groups) - len(uncovered)}/{len(groups)} candidate groups translated, "
        f"{len(uncovered) - len(missing)} left out on review (UNTRANSLATED); missing: {' '.join(missing) or 'none'}"
    )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
