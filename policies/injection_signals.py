"""The weighted phrase signals of the prompt-injection scorer, in six languages.

Each signal is a regex over folded text (see `policies.injection_detector.fold`: lower case,
ASCII letters) that is tried only where a match can start: every alternative begins with a
word whose first five letters (or the whole word, when shorter) are among the signal's `keys`,
or with one of its `marks`. Common lead-ins ("do not follow", "you can do anything") are
written as look-behinds so that the match starts on the rarer word. The test suite checks that
anchored and full-text matching agree on the corpus.

Weights: one clear attack phrase (override, exfiltration, safety bypass, a jailbreak persona)
reaches the default threshold alone; ambiguous cues (a persona switch, "no restrictions", a
bare "jailbreak", an authority claim) only together. Phrasings follow public jailbreak and
injection collections; the labelled corpus is tests/data/injection_corpus.jsonl.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Signal:
    """A weighted phrase pattern with the word starts (`keys`) or marks it can begin with.

    `needs`, when given, are rarer word starts of which a text must hold one before the
    pattern is tried at all (the nouns an attack phrase cannot do without).
    """

    name: str
    weight: float
    keys: frozenset[str]
    needs: frozenset[str]
    marks: tuple[str, ...]
    pattern: re.Pattern[str]


def _alt(words: str) -> str:
    return "(?:" + "|".join(words.split(",")) + ")"


def _after(lead_ins: str, word: str) -> str:
    """`word` when preceded by one of the comma-separated lead-ins (fixed-width look-behinds)."""
    leads = (lead if lead.endswith("'") else lead + " " for lead in lead_ins.split(","))
    return "(?:" + "|".join(f"(?<={lead})" for lead in leads) + ")" + word


def _signal(name: str, weight: float, keys: str, *patterns: str, needs: str = "",
            marks: str = "") -> Signal:
    return Signal(name, weight, frozenset(keys.split()), frozenset(needs.split()),
                  tuple(marks.split()), re.compile("|".join(patterns)))


_GAP = r"(?:\W+(?!my\b|mes\b|meine\w*\b|mis\b|mie\b|minhas\b)\w+){0,4}?\W+"


def _override(verbs: str, quals: str, objs: str) -> str:
    v, q, o = _alt(verbs), _alt(quals), _alt(objs)
    return (rf"{v}\b{_GAP}{q}\b(?:\W+\w+){{0,2}}?\W+{o}\b"
            rf"|{v}\b{_GAP}{o}\W+(?:\w+\W+){{0,2}}?{q}\b")


_OBEIS = _after("n'", "obeis")
_FOLLOW = _after("do not,don't,stop,no longer", "follow(?:ing)?")
OVERRIDE = _signal(
    "override", 0.85,
    "ignor disre forge skip overr overw bypas negle aband disca aside follo previ prior earli "
    "above old origi initi syste instr rules guide direc oubli tiens tenez abstr outre obeis "
    "desob suis vergi verge missa ubers vorhe bishe obige alle olvid omite omiti desca omiso "
    "sigas segui alto dimen trasc scord trala esque desco despr",
    _override(f"ignore,ignoring,disregard,forget,skip,override,overwrite,bypass,neglect,abandon,"
              f"discard,{_after('set', 'aside')},{_FOLLOW}",
              "previous,prior,preceding,above,earlier,initial,original,former,foregoing,old,"
              "existing,system,developer,default,all,any,every,your,these",
              "instructions?,directives?,prompts?,guidelines,guidance,commands,programming,"
              "guardrails,directions,rules,constraints,restrictions,policies,context"),
    r"(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+|that\s+)?"
    r"(?:above|before|(?:previous(?:ly)?|prior)(?=\s*(?:[.,;:!]|and\b|$))|you(?:'ve| have| were)"
    r" (?:been )?told)\b|(?:discard|ignore|disregard|forget)\b(?:\W+\w+){0,4}?\W+you (?:were|"
    r"have been) given\b",
    r"(?:(?:previous|prior|earlier|above|old|original|initial|system) (?:instructions|rules|"
    r"guidelines|directives|prompt)|(?:instructions|rules|guidelines|directives) above) (?:are|"
    r"were|is) (?:now )?(?:void|invalid|outdated|cancell?ed|revoked|obsolete|null|no longer "
    r"valid)\b",
    _override(f"ignore[rsz]?,ignorons,oublie[rsz]?,{_after('ne', 'tiens? (?:pas|plus|aucun)')} "
              f"compte,{_after('ne', 'tenez (?:pas|plus|aucun)')} compte,abstraction,"
              f"outre(?:passe[rz]?)?,{_OBEIS} plus a,desobeis a,"
              f"{_after('ne', 'suis')} plus",
              "precedentes?,anterieures?,ci-dessus,initiales?,d'origine,originales?,"
              "du systeme,systeme,toutes,tes,vos",
              "instructions?,consignes?,directives?,regles,prompt,indications,ordres"),
    r"oublie[rz]?\s+tout\s+ce\s+qu(?:e|i|')",
    _override("ignorier\\w*,vergiss,vergesst,vergessen sie,missachte\\w*,uberschreib\\w*",
              "vorherigen,vorigen,bisherigen,obigen,vorangegangenen,vorhergehenden,fruheren,"
              "ursprunglichen,alle,deine,ihre,eure,system",
              "anweisungen,instruktionen,befehle,regeln,vorgaben,richtlinien,anordnungen,"
              "systemprompt,prompt,direktiven"),
    r"(?:vorherigen|bisherigen|obigen|alle)\s+(?:\w+\s+)?(?:anweisungen|instruktionen|regeln)"
    r"\s+(?:\w+\s+){0,3}?(?:ignorieren|vergessen|missachten)\b|vergiss\s+alles\b",
    _override(f"ignora\\w*,olvida\\w*,omite,omitir,descarta\\w*,{_after('caso', 'omiso')},"
              f"{_after('no', 'sigas')},{_after('deja de', 'seguir')},{_after('por', 'alto')}",
              "anteriores,previas,precedentes,de arriba,iniciales,originales,del sistema,"
              "todas,tus,sus",
              "instrucciones,indicaciones,reglas,ordenes,directrices,directivas,prompt,normas"),
    r"olvida\s+todo\s+lo\s+(?:anterior|que)\b",
    _override(f"ignora\\w*,dimentica\\w*,trascura\\w*,{_after('non,smetti di', 'seguire')},"
              f"scorda\\w*,tralascia\\w*",
              "precedenti,anteriori,iniziali,originali,di sistema,sopra,tutte,tue,sue",
              "istruzioni,indicazioni,regole,direttive,ordini,prompt,consegne"),
    r"dimentica\s+tutto\b",
    _override("ignore,ignora\\w*,esqueca\\w*,esquece\\w*,desconsidere\\w*,despreze",
              "anteriores,previas,iniciais,originais,do sistema,todas,suas,tuas",
              "instrucoes,regras,diretrizes,ordens,orientacoes,prompt"),
    needs="instr direc promp guide guida comma progr guard rules const restr polic conte above "
    "befor told given consi regle ordre indic anwei befeh regel vorga richt anord syste istru "
    "regla orden norma regol ordin regra diret orien tout alles todo tutto",
)
_TARGET = (
    r"(?:system ?prompt|system message|systemnachricht|systemanweisungen|prompt (?:du|del|de|di|"
    r"do) sistem[ae]?|prompt systeme|message systeme|mensaje del sistema|messaggio di sistema|"
    r"(?:initial|original|hidden|secret|confidential|internal|pre-?) ?(?:prompt|instructions)|"
    r"instructions you were given|developer (?:message|prompt)|(?:instructions|instrucciones|"
    r"istruzioni|instrucoes|consignes) (?:initiales|cachees|secretes|iniciales|ocultas|secretas|"
    r"originales|iniziali|nascoste|segrete|originali|iniciais|do sistema|del sistema|di sistema|"
    r"du systeme)|(?:anfangs|ursprunglichen |versteckten |geheimen )anweisungen|pre-?prompt|"
    r"prompt (?:that )?(?:your \w+|the \w+|they) (?:configured|gave|wrote|set)|instructions "
    r"qu'on t'a donnees|anweisungen,? die du (?:bekommen|erhalten) hast|instrucciones que te "
    r"dieron|istruzioni che ti hanno dato|instrucoes que (?:te|lhe) deram)(?!\s+(?:variable|"
    r"structure|template|example|format|design|engineering|for (?:my|our|a|an|this)|in my|of my))")
_DISCLOSE = (
    r"reveal|show|print|display|output|repeat|recite|dump|leak|expose|disclose|share|tell|give|"
    r"write out|copy|paste|revele[rz]?|montre[rz]?|affiche[rz]?|donne[rz]?|repete[rz]?|"
    r"ecris|zeig\w*|nenne|gib|verrate|wiederhole|schreib\w*|revela\w*|muestra\w*|dime|repite|"
    r"imprime|ensena\w*|rivela|mostra\w*|dimmi|ripeti|stampa|revele|mostre|diga|repita|imprima")
_DISCLOSE_KEYS = (
    "revea show print displ outpu repea recit dump leak expos discl share tell give write "
    "copy paste revel montr affic donne repet ecris zeig zeige nenne gib verra wiede schre muest "
    "dime repit impri ensen rivel mostr dimmi ripet stamp diga ")
_YOURS = r"your|ton|votre|tes|vos|deinen|deine|dein|tu|tus|il tuo|le tue|i tuoi|o seu|seu|suas"
_THEIRS = (r"your|the|ton|votre|tes|vos|le|les|deinen|deine|dein|den|die|el|tu|tus|las|il tuo|"
           r"il|le tue|i tuoi|o seu|seu|suas|o|as")
EXFILTRATION = _signal(
    "exfiltration", 0.85, _DISCLOSE_KEYS + "what quel quell dein cual qual start",
    rf"(?:{_DISCLOSE})\b(?:\W+\w+){{0,2}}?\W+(?:(?:{_THEIRS})\W+(?:(?:full|entire|complete|"
    rf"exact|whole|complet|completo|komplett\w*|vollstandig\w*|ganzen|entier|entero|intero|"
    rf"inteiro)\W+)?|(?:{_YOURS})\W+(?:\w+\W+)?){_TARGET}",
    rf"(?:what(?:'s| is| are| was| were)\s+your|quel(?:le)? est (?:ton|votre)|"
    rf"{_after('was ist', 'dein')}|cual es tu|qual e il tuo|qual e o seu)\s+(?:\w+\s+)?{_TARGET}",
    r"(?:repeat|print|output|copy|write out)\s+(?:all\s+|the\s+|everything\s+)*(?:text|words|"
    r"lines|content|everything|instructions)?\s*(?:above|before this)",
    r"what (?:were|was) you told\b|starting with ['\"]?you are\b",
    needs="promp syste instr istru consi anwei told above befor messa nachr mensa start",
)
EXFILTRATION_WEAK = _signal(
    "exfiltration_weak", 0.45, _DISCLOSE_KEYS + "list what",
    r"(?:reveal|show|print|tell|give|repeat|list|paste|output|what(?:'s| is| are))\b(?:\W+"
    r"\w+){0,6}?\W+your\s+(?:\w+\s+)?(?:instructions|rules|guidelines|programming|"
    r"configuration|prompt)\b",
    r"(?:montre|affiche|donne|revele|zeig\w*|nenne|gib|muestra\w*|dime|revela|mostra\w*|dimmi|"
    r"rivela|mostre|revele)\W+(?:\w+\W+)?(?:tes|vos|deine|tus|le tue|i tuoi|suas)\s+(?:\w+\s+)?"
    r"(?:instructions|consignes|regles|anweisungen|regeln|instrucciones|reglas|istruzioni|"
    r"regole|instrucoes|regras)\b",
    needs="instr rules guide progr confi promp consi regle anwei regel regla regol regra istru",
)
VERBATIM = _signal(
    "verbatim", 0.3, "verba word mot wort wortw palab parol palav textu testu liter",
    r"verbatim\b|word for word\b|mot pour mot\b|wort(?:wortlich| fur wort)\b|palabra por palabra"
    r"\b|parola per parola\b|palavra por palavra\b|textu(?:ellement|almente)\b|testualmente\b|"
    r"literalmente\b")
_MODES = (r"mode developpeur|entwicklermodus|modo desarrollador|modalita sviluppatore|modo "
          r"desenvolvedor|mode dieu|gottmodus|modo dios|modalita dio|modo deus")
_DAN_LEADS = ("you are,you're,are now,act as,become,enable,activate,enter,switch to,play,to be,"
              "bist du")
JAILBREAK = _signal(
    "jailbreak_persona", 0.8,
    "anyth dan bette antig devel dev god sudo jailb unres tu vous du ahora ora agora unfil uncen "
    "unali amora uneth evil now break",
    rf"{_after('do', 'anything now')}\b|{_after(_DAN_LEADS, 'dan')}\b|dan\s+(?:mode|\d+(?:\.\d+)?)"
    r"\b|betterdan\b|antigpt\b",
    r"(?:developer|dev|god|sudo|jailbreak|unrestricted) mode (?:enabled|output|response|"
    r"activated|is on)",
    _after("simulate,you are in,you're in,are now in,now in,with",
           r"(?:developer|dev|god|sudo|jailbreak|unrestricted) mode\b"),
    rf"(?:tu es|vous etes|du bist|ahora estas|ora sei|agora voce esta)\s+(?:\w+\s+){{0,2}}?"
    rf"(?:en\s+|im\s+|en\s+el\s+|in\s+|em\s+)?(?:{_MODES})",
    r"jailbroken\b|(?:unfiltered|uncensored|unrestricted|unaligned|amoral|unethical|evil)\s+"
    r"(?:\w+\s+)?(?:ai|assistant|chatbot|model|bot|llm|version|persona|character|confidant)\b",
    r"now that we'?ve got (?:that|this) (?:\w+ )?out of the way\b|"
    + _after("let's,lets", r"break the \w* ?rules"),
    needs="dan anyth bette antig mode modo modal entwi gottm jailb unfil uncen unres unali amora "
    "uneth evil way rules",
)
JAILBREAK_WORD = _signal(
    "jailbreak_word", 0.3, "jailb devel god mode modo modal entwi gottm",
    rf"jailbreak|developer mode|god mode|{_MODES}")
_LIMITS = (r"restrictions?|limitations?|limits|filters?|filtering|censorship|rules|content "
           r"polic(?:y|ies)|policies|ethical (?:guidelines|constraints|boundaries)|moral "
           r"(?:constraints|compass|guidelines)|safeguards|guardrails")
NO_RESTRICTIONS = _signal(
    "no_restrictions", 0.4,
    "no witho free zero sans aucun ohne keine sin senza sem follo obey respe sigue suit "
    "befol segue",
    rf"(?:no|without(?: any)?|free (?:of|from)|zero)\s+(?:\w+\s+)?(?:{_LIMITS})\b",
    r"(?:sans|aucune?)\s+(?:aucune\s+)?(?:restrictions?|limites?|filtres?|censure|regles?)\b|"
    r"(?:ohne|keine)\s+(?:jegliche\s+|irgendwelche\s+)?(?:einschrankung(?:en)?|regeln|filter|"
    r"zensur|grenzen|richtlinien)\b|sin\s+(?:ninguna\s+|ningun\s+)?(?:restricciones|"
    r"restriccion|limites|filtros|censura|reglas)\b|senza\s+(?:alcuna\s+|nessuna\s+)?"
    r"(?:restrizion[ei]|limiti|filtri|censura|regole)\b|sem\s+(?:nenhuma\s+)?(?:restricao|"
    r"restricoes|limites|filtros|censura|regras)\b",
    _after("n't,not,never", r"(?:follow|obey|respect)s? any\s+rules?\b"),
    r"(?:sigue|suit|befolgt|segue)s?\s+(?:ninguna|aucune|keine|nessuna|nenhuma)\s+(?:reglas?|"
    r"regles?|regeln|regole|regras)\b",
    needs="restr limit filte censo rules polic ethic moral safeg guard einsc regel zensu grenz "
    "richt filtr censu regle regla regol regra",
)
NOT_BOUND = _signal(
    "not_bound", 0.6,
    "bound restr limit const free freed liber relea broke anyth follo abide obey if imagi suppo "
    "contr soumi nicht von no libre non livre puede podra tu du puoi stell immag",
    _after("not,longer,never,not be,never be", r"(?:bound|restricted|limited|constrained) by\b"),
    r"(?:free|freed|liberated|released|broken free) (?:from|of) (?:all |any |your |the )?"
    r"(?:[\w']+ )?(?:rules|restrictions|constraints|guidelines|limitations|shackles|chains|"
    r"policies|programming)\b",
    _after("you can do,you can say,you will do,you will say,you must do,you must say",
           r"anything\b"),
    _after("don't have to,do not have to", r"(?:follow|abide by|obey) (?:any|the|your)\b"),
    rf"(?:if|imagine|suppose) you (?:had|have|were|did) (?:no|not have any|without) "
    rf"(?:{_LIMITS})\b",
    r"libere? de (?:toutes )?(?:tes|les|vos) (?:regles|restrictions|contraintes)\b|"
    + _after("n'es plus", "(?:limite|contraint|soumis)") + r"|nicht (?:mehr )?an (?:\w+ )?"
    r"(?:regeln|richtlinien|einschrankungen) gebunden|von allen (?:regeln|einschrankungen) "
    r"befreit|no (?:estas|tienes que) (?:sujeto|limitado|obligado)|libre de (?:todas )?(?:las |"
    r"tus )?(?:reglas|restricciones)|non sei piu (?:vincolato|limitato)|libero da (?:tutte )?"
    r"(?:le )?(?:regole|restrizioni)|livre de (?:todas )?(?:as )?(?:regras|restricoes)",
    r"(?:puedes|podras) (?:decir|hacer) (?:cualquier cosa|lo que quieras)|tu peux (?:tout "
    r"dire|dire n'importe quoi)|du kannst alles sagen|puoi dire qualsiasi cosa|stell dir vor,? "
    r"du hattest keine|imagine que tu n'a(?:s|vais) (?:aucune?|pas de)|imagina que no (?:tienes|"
    r"tuvieras)|immagina di non avere|imagine que voce nao tem",
    needs="bound restr limit const free freed liber relea broke anyth polic rules guide progr "
    "filte censo ethic moral safeg guard contr soumi gebun befre sujet oblig vinco libre livre "
    "cualq impor tout alles quals richt einsc regla regol regle regra regel obey abide",
)
_AI = r"(?:ai|ia|ki|assistant|chatbot|model|llm|assistente|asistente)"
_PERSONA_LEADS = ",".join(
    f"{lead} {article}".rstrip() if article != "un'" else f"{lead} un'"
    for lead in ("you are", "act as", "agis comme", "comporte-toi comme", "verhalte dich wie",
                 "actua como", "comportati come", "aja como")
    for article in ("", "a", "an", "une", "un", "una", "eine", "ein", "uma", "un'"))
PERSONA = _signal(
    "persona_switch", 0.3,
    "now prete act rolep role imagi chara maint sembl joue jetzt nun sofor als eres finge actua "
    "sei fingi voce finja parti poi ai ia ki assis chatb model llm asist",
    _after("you are,you're", r"now\b") + "|" + _after("from", r"now on,? you\b"),
    r"(?:pretend (?:you are|to be|that you)|act as if|roleplay as|role-play as|imagine you are|"
    r"joue le role|finge (?:que eres|ser)|actua como si|fingi di essere|finja (?:que|ser))\b",
    _after("stay in,never break", r"character\b"), _after("tu es", r"maintenant\b"),
    _after("fais", r"semblant\b"), _after("du bist,du bist ab", r"(?:jetzt|nun|sofort)\b"),
    _after("ab", r"jetzt bist du\b"), _after("tu so,tu so,", r"als\b"),
    _after("ahora", r"eres\b"), _after("ora", r"sei\b"), _after("agora", r"voce e\b"),
    _after("a", r"partir de (?:maintenant,? tu|ahora,? (?:eres|seras))\b"),
    _after("d'ora in", r"poi,? (?:sei|sarai)\b"),
    _after(_PERSONA_LEADS, rf"{_AI}\s+(?:that|who|with|without|sans|ohne|sin|senza|sem|qui|que|"
                           r"die|der|che)\b"),
)
_SAFETY_OBJ = (r"guardrails|safeguards|content polic(?:y|ies)|safety (?:guidelines|measures|"
               r"protocols|settings|training)|moderation|alignment|censorship|garde-fous|"
               r"sicherheitsfilter|schutzmechanismen|salvaguardas|protezioni")
_SAFETY_QUAL = (r"safety|content|ethical|moral|security|de seguridad|di sicurezza|de securite|"
                r"de seguranca")
_ARTICLE = r"(?:(?:the|all|any|les|die|los|las|i|le|os|as)\W+)?"
SAFETY_OFF = _signal(
    "safety_off", 0.7,
    "disab turn deact switc bypas remov circu overr ignor desac conto suppr deakt umgeh schal "
    "omite evita elimi salta disat aggir rimuo desat",
    rf"(?:disable|turn off|deactivate|switch off|bypass|remove|circumvent|override|ignore|"
    rf"desactive[rz]?|contourne[rz]?|supprime[rz]?|deaktivier\w*|umgeh\w*|schalte|desactiva\w*|"
    rf"omite|evita|elimina|salta|disattiva|aggira|rimuovi|desative|contorne)\W+(?:{_ARTICLE}"
    rf"(?:(?:{_SAFETY_QUAL})\W+)?(?:{_SAFETY_OBJ})|{_ARTICLE}(?:{_SAFETY_QUAL})\W+(?:filters?|"
    rf"filtres|filtros|filtri)|(?:your|tes|vos|deine|ihre|tus|sus|i tuoi|le tue|seus|suas)\W+"
    rf"(?:\w+\W+)?(?:filters?|filtres|filtros|filtri|restrictions|{_SAFETY_OBJ}))\b",
    needs="filte guard safeg polic safet moder align censo garde siche schut salva prote filtr "
    "restr",
)
NEW_INSTRUCTIONS = _signal(
    "new_instructions", 0.45, "new updat real actua true follo nouve neue nueva nuove novas",
    r"(?:new|updated|real|actual|true) instructions?\s*:|"
    + _after("the", "following instructions supersede") + r"|(?:nouvelles instructions|neue "
    r"anweisungen|nuevas instrucciones|nuove istruzioni|novas instrucoes)\s*:",
    needs="instr anwei istru super",
)
NEW_TASK = _signal(
    "new_task", 0.6, "new nouve neue nueva nuovo",
    _after("your", r"new (?:task|instructions|role|goal|objective|purpose|mission) (?:is|are|:)"),
    _after("ta", r"nouvelle (?:tache|mission) est\b"), _after("deine", r"neue aufgabe ist\b"),
    _after("tu", r"nueva (?:tarea|mision) es\b"), _after("il tuo", r"nuovo (?:compito|ruolo) e\b"),
    needs="task tasks role goal objec purpo missi instr tache aufga tarea compi ruolo",
)
SYSTEM_MARKER = _signal(
    "system_marker", 0.55, "syste assis admin root sudo devel input promp docum begin",
    r"<\|(?:im_start|im_end|system|endoftext|start_header_id)\|?>|\[/?inst\]|<</?sys>>|"
    r"(?<![^\n#>] )(?<![^\n#> ])(?:system|assistant)(?:\s+(?:message|prompt))?\s*:(?!:)|"
    r"\[(?:system|system message|admin)\]|(?:admin|administrator|root|sudo|system|developer) "
    r"(?:override|command|mode|note|message|notice|update|alert|announcement)\s*:|"
    + _after("end of,end of user", r"(?:input|prompt|document)\b")
    + r"|begin (?:new )?(?:system )?(?:instructions|prompt)\b|</?(?:system|"
    r"instructions?)>",
    marks="<| [inst [/inst <<sys <</sys <sys </sys <inst </inst [syst [admi",
)
_ROLES = "i am your,i am the,i'm your,i'm the"
AUTHORITY = _signal(
    "authority_claim", 0.45,
    "devel creat admin owner opera progr autho overr sudo entwi schop desar cread svilu ammin "
    "desen criad",
    _after(_ROLES, r"(?:developer|creator|administrator|admin|owner|operator|programmer)\b"),
    r"(?:authori[sz]ation|override|admin|sudo) code\b",
    _after("je suis ton,je suis votre", r"(?:developpeur|createur|administrateur)"),
    _after("ich bin dein", r"(?:entwickler|administrator|schopfer)"),
    _after("soy tu", r"(?:desarrollador|creador|administrador)"),
    _after("sono il tuo", r"(?:sviluppatore|creatore|amministratore)"),
    _after("sou seu,sou o seu", r"(?:desenvolvedor|criador|administrador)"),
    needs="devel creat admin owner opera progr code entwi schop desar cread svilu ammin desen "
    "criad",
)
INDIRECT = _signal(
    "addresses_ai", 0.5, "note messa instr ai llm langu assis chatb docum page email file text",
    r"(?:note|message|instructions?) (?:to|for) (?:the |any |all )?(?:ai|llm|assistant|chatbot|"
    r"language model|gpt)s?\b|(?:ai|llm) assistants? (?:reading|processing|summari[sz]ing) "
    r"this\b",
    _after("if you are an,if you are a,when you are an,when you are a",
           r"(?:ai|llm|language model|assistant|chatbot)\b"),
    _after("when you read this,when you process this,when you summarize this,when you "
           "summarise this,when you see this", r"(?:document|page|email|message|file|text)\b"),
    needs="ai ais llm llms gpt chatb assis langu docum page email messa file text",
)
CONCEAL = _signal(
    "conceal_from_user", 0.45, "tell infor alert menti witho",
    r"tell no one\b|" + _after("do not,don't", r"(?:tell|inform|alert|mention (?:this |it )?to) "
                               r"the user\b")
    + r"|without (?:telling|informing|alerting) the user\b",
    needs="user one",
)
HIJACK = _signal(
    "output_hijack", 0.6, "pwned say print outpu respo reply write",
    _after("have been,i've been", r"pwned\b"),
    r"(?:say|print|output|respond with|reply with|write)\s+(?:only\s+)?['\"]?(?:i have been\s+)?"
    r"(?:hacked|pwned|access granted)\b",
    needs="pwned hacke acces",
)
PWNED = _signal("pwned", 0.3, "pwned", r"pwned\b")
DECODE_FOLLOW = _signal(
    "decode_and_follow", 0.55, "decod decip conve base6 rot13 hex",
    r"(?:decode|decipher|convert)\b.{0,60}?\b(?:and|then)\s+(?:follow|execute|obey|run|carry "
    r"out|act on|do what)\b|(?:base64|rot13|hex)\b.{0,60}?\b(?:follow|execute|obey)\b",
    needs="follo execu obey run carry act do",
)
SIGNALS: Final[tuple[Signal, ...]] = (
    OVERRIDE, EXFILTRATION, EXFILTRATION_WEAK, VERBATIM, JAILBREAK, JAILBREAK_WORD,
    NO_RESTRICTIONS, NOT_BOUND, PERSONA, SAFETY_OFF, NEW_INSTRUCTIONS, NEW_TASK, SYSTEM_MARKER,
    AUTHORITY, INDIRECT, CONCEAL, HIJACK, PWNED, DECODE_FOLLOW)
WEIGHTS: Final[dict[str, float]] = {s.name: s.weight for s in SIGNALS} | {
    "encoded_payload": 0.85, "obfuscation": 0.3}
