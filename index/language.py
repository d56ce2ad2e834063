"""Language detection by stop words, and the stop-word lists the lexical analyzer uses.

Detection counts how many of a text's words are frequent function words of each language; it is
deterministic, needs no model and is good enough to pick a stemmer for a paragraph. Short texts (queries)
are the hard case: French-only letters (é, è, ç, à, ...) and elisions (l', d', qu') add weight to French,
and ties fall back to the caller's `default`.
"""

from __future__ import annotations

import re
import unicodedata

LANGUAGES = ("fr", "en", "de", "es", "it", "nl", "pt")

_RAW_STOPWORDS: dict[str, str] = {
    "fr": """
        a ai aie aient aies ait alors as au aucun aucune aupres auquel aura aurai auraient aurais aurait auras
        aurez auriez aurions aurons auront aussi autre autres aux auxquelles auxquels avaient avais avait avant
        avec avez aviez avions avoir avons ayant ayez ayons c ca ce ceci cela celle celles celui cependant ces
        cet cette ceux chaque chez ci comme comment d dans de des donc dont du elle elles en encore entre es est
        et etaient etais etait etant ete etes etiez etions etre eu eue eues eumes eurent eus eut eux fait fut
        furent ici il ils j je jusqu l la le les leur leurs lors lorsqu lui m ma mais me meme memes mes moi mon
        n ne ni nos notre nous on ont ou par parce pas pendant peu peut plus pour pourquoi qu quand que quel
        quelle quelles quels qui s sa sans se sera serai seraient serait seront ses si sien soi soit sommes son
        sont sous suis sur t ta te tes toi ton tous tout toute toutes tres tu un une unes uns vos votre vous y
        quoi combien ou laquelle lequel lesquels lesquelles puisqu
    """,
    "en": """
        a about above after again against all am an and any are as at be because been before being below
        between both but by can could did do does doing down during each few for from further had has have
        having he her here hers herself him himself his how i if in into is it its itself just me more most my
        myself no nor not now of off on once only or other our ours ourselves out over own same she should so
        some such than that the their theirs them themselves then there these they this those through to too
        under until up very was we were what when where which while who whom why will with would you your
        yours yourself yourselves s t don
    """,
    "de": """
        aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes auch auf
        aus bei bin bis bist da damit dann das dass dein deine dem den der des dessen dich die dies diese
        diesem diesen dieser dieses dir doch dort du durch ein eine einem einen einer eines er es etwas euch
        euer eure fur gegen gewesen hab habe haben hat hatte hatten hier hin hinter ich ihm ihn ihnen ihr ihre
        im in indem ins ist jede jedem jeden jeder jedes jene jetzt kann kein keine konnen machen man manche
        mein meine mich mir mit muss nach nicht nichts noch nun nur ob oder ohne sehr sein seine selbst sich
        sie sind so solche soll sondern sonst uber um und uns unser unter viel vom von vor war waren warum was
        weil welche welchem welchen welcher welches wenn werde werden wie wieder will wir wird wo wollen zu
        zum zur zwar zwischen wurde wurden wurdest worden seid sollte sollten konnte konnten musste mussten
    """,
    "es": """
        a al algo algunas algunos ante antes como con contra cual cuando de del desde donde durante e el ella
        ellas ellos en entre era erais eran eras eres es esa esas ese eso esos esta estaba estado estais
        estamos estan estar estas este esto estos estoy fue fueron fui fuimos ha habia han has hasta hay la
        las le les lo los mas me mi mis mucho muchos muy nada ni no nos nosotros o os otra otras otro otros
        para pero poco por porque que quien quienes se sea sean ser si sido sin sobre sois somos son soy su
        sus tambien tanto te tenia tengo ti tiene tienen todo todos tu tus un una uno unos usted ustedes y ya yo
    """,
    "it": """
        a ad agli ai al alla alle allo anche avere aveva avevano c che chi ci come con contro cui da dagli dai
        dal dalla dalle dallo degli dei del dell della delle dello di dove e ed era erano essere gli ha hanno
        ho i il in io l la le lei li lo loro lui ma mi mia mie miei mio ne negli nei nel nella nelle nello noi
        non nostra nostre nostri nostro o per perche piu quale quanta quante quanti quanto quella quelle
        quelli quello questa queste questi questo se sei si sia siamo siete sono su sua sue sugli sui sul
        sulla sulle sullo suo suoi ti tra tu tua tue tuo tuoi tutti tutto un una uno vi voi
    """,
    "nl": """
        aan al alles als altijd andere ben bij daar dan dat de der deze die dit doch doen door dus een eens en
        er ge geen geweest haar had heb hebben heeft hem het hier hij hoe hun iemand iets ik in is ja je kan
        kon kunnen maar me meer men met mij mijn moet na naar niet niets nog nu of om omdat onder ons ook op
        over reeds te tegen toch toen tot u uit uw van veel voor want waren was wat werd wezen wie wil worden
        wordt zal ze zelf zich zij zijn zo zonder zou
    """,
    "pt": """
        a ao aos aquela aquelas aquele aqueles aquilo as ate com como da das de dela delas dele deles depois do
        dos e ela elas ele eles em entre era eram essa essas esse esses esta estao estas este estes eu foi
        foram ha isso isto ja lhe lhes mais mas me mesmo meu meus minha minhas muito na nao nas nem no nos nossa
        nossas nosso nossos num numa o os ou para pela pelas pelo pelos por qual quando que quem se sem ser
        seu seus so sua suas tambem te tem tinha tu tua tuas um uma voce voces vos
    """,
}

STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split()) for lang, words in _RAW_STOPWORDS.items()
}
"""Stop words per language, lowercase and accent-folded (the analyzer compares folded forms)."""

_WORD = re.compile(r"[^\W\d_]+")
_FRENCH_LETTERS = frozenset("èêçùûîœë")  # shared with pt/es/it only in part: a hint, capped
_FRENCH_ELISION = re.compile(r"\b(?:l|d|qu|j|n|s|c|m|t|jusqu|lorsqu|puisqu)['’][^\W\d_]", re.IGNORECASE)


def fold_accents(text: str) -> str:
    """'Élève' -> 'Eleve': drop combining marks after canonical decomposition (œ/æ/ß are kept)."""
    if text.isascii():  # most words: nothing to fold
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Question words are often the only function word of a short question ("Wer leitet X?", "Woher stammt Y?"),
# and some of them are missing from the stop-word lists, so they are counted on their own.
_QUESTION_WORDS: dict[str, frozenset[str]] = {
    "fr": frozenset(
        [
            "qui",
            "que",
            "quoi",
            "quel",
            "quelle",
            "quels",
            "quelles",
            "ou",
            "quand",
            "comment",
            "combien",
            "pourquoi",
            "lequel",
            "laquelle",
        ]
    ),
    "en": frozenset(["who", "whom", "whose", "what", "when", "where", "why", "how", "which"]),
    "de": frozenset(
        [
            "wer",
            "wen",
            "wem",
            "wessen",
            "was",
            "wann",
            "wo",
            "woher",
            "wohin",
            "warum",
            "wieso",
            "weshalb",
            "wie",
            "welche",
            "welcher",
            "welches",
        ]
    ),
    "es": frozenset(
        [
            "quien",
            "quienes",
            "que",
            "cual",
            "cuales",
            "cuando",
            "donde",
            "como",
            "cuanto",
            "cuanta",
            "cuantos",
            "cuantas",
            "por",
        ]
    ),
    "it": frozenset(
        [
            "chi",
            "che",
            "cosa",
            "quale",
            "quali",
            "quando",
            "dove",
            "come",
            "quanto",
            "quanta",
            "quanti",
            "quante",
            "perche",
        ]
    ),
    "nl": frozenset(["wie", "wat", "wanneer", "waar", "waarom", "hoe", "welke", "hoeveel"]),
    "pt": frozenset(
        [
            "quem",
            "que",
            "qual",
            "quais",
            "quando",
            "onde",
            "como",
            "quanto",
            "quanta",
            "quantos",
            "quantas",
            "porque",
        ]
    ),
}


def detect_language(text: str, default: str = "en") -> str:
    """Best guess among fr, en, de, es, it, nl, pt from stop-word counts; `default` for empty or unknown text.

    Only the first ~2,000 words are looked at: more does not change the answer and keeps it fast.
    """
    words = _WORD.findall(text.lower())[:2000]
    if not words:
        return default
    scores = dict.fromkeys(LANGUAGES, 0.0)
    for word in words:
        folded = fold_accents(word)
        for lang in LANGUAGES:
            if folded in STOPWORDS[lang]:
                scores[lang] += 1.0
            if folded in _QUESTION_WORDS[lang]:
                scores[lang] += 0.5
    # Letters and elisions that are (nearly) French-only: they decide short questions like "Qui a fondé X".
    lowered = text.lower()
    scores["fr"] += min(2.0, 0.25 * sum(1 for ch in lowered if ch in _FRENCH_LETTERS))
    scores["fr"] += 1.0 * len(_FRENCH_ELISION.findall(text))
    best = max(LANGUAGES, key=lambda lang: (scores[lang], lang == default))
    return best if scores[best] > 0 else default


DOCUMENT_LANGUAGE_DEFAULT = "fr"
DOCUMENT_LANGUAGE_SAMPLE = 20_000  # characters; detection reads at most ~2,000 words of them anyway


def document_language(text: str) -> str:
    """The language of a whole document: decided once, when it is indexed, and stored with it.

    The one place that decides it (readers and test fakes call this, never `detect_language` with their
    own sample size or default)."""
    return detect_language(text[:DOCUMENT_LANGUAGE_SAMPLE], default=DOCUMENT_LANGUAGE_DEFAULT)


# Scripts whose languages the stop-word detector cannot see: (prefix of the Unicode character name, code).
_SCRIPTS = (
    ("CJK", "zh"),
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("HANGUL", "ko"),
    ("CYRILLIC", "ru"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("GREEK", "el"),
    ("DEVANAGARI", "hi"),
    ("THAI", "th"),
)


def script_language(text: str) -> str | None:
    """The language of a text mostly written in a non-Latin script ('zh' for Han, 'ja' when kana appear,
    'ru' for Cyrillic, ...), or None for Latin-script text, so that a brand name in Latin letters inside a
    Chinese question does not make it French."""
    counts: dict[str, int] = {}
    latin = 0
    for ch in text[:2000]:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("LATIN"):
            latin += 1
            continue
        for prefix, code in _SCRIPTS:
            if name.startswith(prefix):
                counts[code] = counts.get(code, 0) + 1
                break
    if "ja" in counts:  # Japanese mixes kanji (CJK) with kana
        counts["ja"] += counts.pop("zh", 0)
    if not counts:
        return None
    code, count = max(counts.items(), key=lambda item: item[1])
    # A Han or kana character is about a word, a Latin word about five letters: half as many is a majority.
    return code if 2 * count >= latin else None
