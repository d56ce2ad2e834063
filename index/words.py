"""Word lists of every language and the folding they are compared in: the one source of them.

Three users read them, each for its own purpose:
- the lexical analyzer (`index.lexical`) drops `STOPWORDS` of a text's language before stemming;
- language detection (`index.language`) counts `STOPWORDS` and `QUESTION_WORDS` of each language;
- the evidence step (`rag.evidence`) leaves out of a question's content words its stop words, its question
  words (`QUESTION_WORDS` of the answer languages), the words that talk about the documents (`META_WORDS`)
  and inflected function words the stop lists lack (`FUNCTION_WORDS`).

Every list is lowercase and accent-folded (`fold`): a word is looked up as `fold(word)`. The module holds
data and folding only; it must not decide anything (which language, which word counts) for its users.
"""

from __future__ import annotations

import unicodedata

LANGUAGES = ("fr", "en", "de", "es", "it", "nl", "pt")


def fold_accents(text: str) -> str:
    """'Élève' -> 'Eleve': drop combining marks after canonical decomposition (œ/æ/ß are kept)."""
    if text.isascii():  # most words: nothing to fold
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold(word: str) -> str:
    """Lowercase without accents: the form every list here is written in and compared in."""
    return fold_accents(word.lower())


def _folded(raw: dict[str, str]) -> dict[str, frozenset[str]]:
    return {lang: frozenset(fold(w) for w in words.split()) for lang, words in raw.items()}


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

STOPWORDS: dict[str, frozenset[str]] = _folded(_RAW_STOPWORDS)
"""Stop words per language (the analyzer drops them; detection counts them)."""

# Question words are often the only function word of a short question ("Wer leitet X?", "Woher stammt Y?"),
# and some of them are missing from the stop-word lists: detection counts them on their own, and the
# evidence step does not ask a passage to contain them (they ask for a kind of answer; they are not content).
_RAW_QUESTION_WORDS: dict[str, str] = {
    "fr": "qui que quoi quel quelle quels quelles ou quand comment combien pourquoi lequel laquelle lesquels "
    "lesquelles est-ce",
    "en": "who whom whose what when where why how which much many",
    "de": "wer wen wem wessen was wann wo woher wohin warum wieso weshalb wie welche welcher welches welchen "
    "welchem viel viele wieviel",
    "es": "quien quienes que cual cuales cuando donde como cuanto cuanta cuantos cuantas por",
    "it": "chi che cosa quale quali quando dove come quanto quanta quanti quante perche",
    "nl": "wie wat wanneer waar waarom hoe welke hoeveel",
    "pt": "quem que qual quais quando onde como quanto quanta quantos quantas porque",
}
QUESTION_WORDS: dict[str, frozenset[str]] = _folded(_RAW_QUESTION_WORDS)

# Words that talk about the question or the documents rather than about the subject: "selon l'article",
# "mentioned in the text". They are never in the span that answers, so they must not count as missing.
META_WORDS: dict[str, frozenset[str]] = _folded(
    {
        "fr": "article articles document documents texte textes passage passages selon evoque evoquee evoques "
        "evoquees mentionne mentionnee mentionnes cite citee cites auteur apres dit indique",
        "en": "article articles document documents text texts passage passages according mentioned said says "
        "stated author state",
        "de": "artikel dokument dokumente dokumenten text texte textes laut erwahnt erwahnte genannt autor",
    }
)
# Inflected function words missing from the stop lists (they only matter for the evidence step's coverage).
FUNCTION_WORDS: dict[str, frozenset[str]] = _folded(
    {
        "de": "seiner seinem seinen seines ihrer ihrem ihren ihres deren dessen worden wurde wurden gibt",
        "en": "did does done has had",
        "fr": "ete etait etaient sont",
    }
)
