"""A heuristic prompt-injection scorer: weighted phrase signals combined into a score in [0, 1].

Signals are regexes over a folded text (lower case, accents and look-alike letters mapped to
ASCII, zero-width characters removed) in English, French, German, Spanish, Italian and
Portuguese. Fired signals combine as a noisy-OR, score = 1 - prod(1 - weight), so one strong
signal (an instruction override) is enough and weak ones (a persona switch, "no restrictions")
only count together. Each signal has a few cheap substrings: its regex runs only when one of
them is in the text. Obfuscation is undone before matching: letters spaced out ("i g n o r e"),
leetspeak ("1gn0r3"), homoglyphs and zero-width joiners (each also a weak signal of its own),
and base64 or hex blobs are decoded and scored in turn.

Mention is not use: a phrase inside quotes in a text that asks about it (translate, explain,
detect ...) does not count, so 'translate "ignore previous instructions" into French' scores
0; the same words outside quotes do count. The corpus in tests/data labels such texts benign.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Assessment:
    """The injection score of a text and the names of the signals that fired."""

    score: float
    signals: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Signal:
    """A weighted phrase pattern, tried only when one of its `keys` is in the folded text."""

    name: str
    weight: float
    keys: tuple[str, ...]
    pattern: re.Pattern[str]


def _alt(words: str) -> str:
    return "(?:" + "|".join(words.split(",")) + ")"


def _signal(name: str, weight: float, keys: str, *patterns: str) -> Signal:
    return Signal(name, weight, tuple(keys.split(",")), re.compile("|".join(patterns)))


_GAP = r"(?:\W+(?!my\b|mes\b|meine\w*\b|mis\b|mie\b|minhas\b)\w+){0,4}?\W+"


def _override(verbs: str, quals: str, objs: str) -> str:
    v, q, o = _alt(verbs), _alt(quals), _alt(objs)
    return (rf"\b{v}\b{_GAP}{q}\b(?:\W+\w+){{0,2}}?\W+{o}\b"
            rf"|\b{v}\b{_GAP}{o}\W+(?:\w+\W+){{0,2}}?{q}\b")


_EN_V = ("ignore,ignoring,disregard,forget,skip,override,overwrite,bypass,neglect,abandon,"
         "discard,set aside,do not follow,don't follow,stop following,no longer follow")
_EN_Q = ("previous,prior,preceding,above,earlier,initial,original,former,foregoing,old,"
         "existing,system,developer,default,all,any,every,your,these")
_EN_O = ("instructions?,directives?,prompts?,guidelines,commands,programming,guardrails,"
         "directions,rules,constraints,restrictions,policies,context")
OVERRIDE = _signal(
    "override", 0.85,
    "ignor,disregard,forget,skip,overrid,overwrit,bypass,neglect,abandon,discard,set aside,"
    "follow,oubli,compte,abstraction,outre,vergiss,vergess,missacht,uberschreib,olvid,omit,"
    "descart,omiso,sigas,dimentic,trascur,scord,tralasc,esquec,desconsider",
    _override(_EN_V, _EN_Q, _EN_O),
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+|that\s+)?"
    r"(?:above|before|previous(?:ly)?|prior|you(?:'ve| have| were) (?:been )?told)\b",
    _override("ignore[rsz]?,ignorons,oublie[rsz]?,ne tiens? (?:pas|plus|aucun) compte,"
              "ne tenez (?:pas|plus|aucun) compte,fais abstraction,faites abstraction,"
              "passe[rz]? outre,outrepasse[rz]?",
              "precedentes?,anterieures?,ci-dessus,initiales?,d'origine,originales?,"
              "du systeme,systeme,toutes,tes,vos",
              "instructions?,consignes?,directives?,regles,prompt,indications,ordres"),
    r"\boublie[rz]?\s+tout\s+ce\s+qu(?:e|i|')",
    _override("ignorier\\w*,vergiss,vergesst,vergessen sie,missachte\\w*,uberschreib\\w*",
              "vorherigen,vorigen,bisherigen,obigen,vorangegangenen,vorhergehenden,fruheren,"
              "ursprunglichen,alle,deine,ihre,eure,system",
              "anweisungen,instruktionen,befehle,regeln,vorgaben,richtlinien,anordnungen,"
              "systemprompt,prompt,direktiven"),
    r"\b(?:vorherigen|bisherigen|obigen|alle)\s+(?:\w+\s+)?(?:anweisungen|instruktionen|regeln)"
    r"\s+(?:\w+\s+){0,3}?(?:ignorieren|vergessen|missachten)\b|\bvergiss\s+alles\b",
    _override("ignora\\w*,olvida\\w*,omite,omitir,descarta\\w*,haz caso omiso,hagan caso omiso,"
              "no sigas,deja de seguir,pasa por alto",
              "anteriores,previas,precedentes,de arriba,iniciales,originales,del sistema,"
              "todas,tus,sus",
              "instrucciones,indicaciones,reglas,ordenes,directrices,directivas,prompt,normas"),
    r"\bolvida\s+todo\s+lo\s+(?:anterior|que)\b",
    _override("ignora\\w*,dimentica\\w*,trascura\\w*,non seguire,smetti di seguire,scorda\\w*,"
              "tralascia\\w*",
              "precedenti,anteriori,iniziali,originali,di sistema,sopra,tutte,tue,sue",
              "istruzioni,indicazioni,regole,direttive,ordini,prompt,consegne"),
    r"\bdimentica\s+tutto\b",
    _override("ignore,ignora\\w*,esqueca\\w*,esquece\\w*,desconsidere\\w*,despreze",
              "anteriores,previas,iniciais,originais,do sistema,todas,suas,tuas",
              "instrucoes,regras,diretrizes,ordens,orientacoes,prompt"),
)
_TARGET = (r"(?:system ?prompt|system message|systemnachricht|systemanweisungen|prompt (?:du|del|"
           r"de|di|do) sistem[ae]?|prompt systeme|message systeme|mensaje del sistema|messaggio di "
           r"sistema|(?:initial|original|hidden|secret|confidential|internal|pre-?) ?(?:prompt|"
           r"instructions)|instructions you were given|developer (?:message|prompt)|(?:instructions"
           r"|instrucciones|istruzioni|instrucoes|consignes) (?:initiales|cachees|secretes|"
           r"iniciales|ocultas|secretas|originales|iniziali|nascoste|segrete|originali|iniciais|"
           r"do sistema|del sistema|di sistema|du systeme)|(?:anfangs|ursprunglichen |versteckten"
           r" |geheimen )anweisungen|pre-?prompt)")
EXFILTRATION = _signal(
    "exfiltration", 0.85,
    "prompt,instruction,system,anweisung,instruc,istruz,consigne,above,text,told,verbatim",
    rf"\b(?:reveal|show|print|display|output|repeat|recite|dump|leak|expose|disclose|share|tell"
    rf"|give|list|spell out|write out|copy|paste|what(?:'s| is| are| was| were)|revele[rz]?|montre"
    rf"[rz]?|affiche[rz]?|donne[rz]?|repete[rz]?|ecris|dis|zeig\w*|nenne|gib|verrate|wiederhole|"
    rf"schreib\w*|revela\w*|muestra\w*|dime|repite|imprime|ensena\w*|rivela|mostra\w*|dimmi|"
    rf"ripeti|stampa|revele|mostre|diga|repita|imprima)\b(?:\W+\w+){{0,4}}?\W+{_TARGET}",
    r"\b(?:repeat|print|output|copy|write out)\s+(?:all\s+|the\s+|everything\s+)*(?:text|words|"
    r"lines|content|everything|instructions)?\s*(?:above|before this|verbatim)",
    r"\bwhat (?:were|was) you told\b|\bstarting with ['\"]?you are\b",
)
EXFILTRATION_WEAK = _signal(
    "exfiltration_weak", 0.45, "your,ton,tes,vos,dein,tus,tuo,tue,seu,sua",
    r"\b(?:reveal|show|print|tell|give|repeat|list|what(?:'s| is| are))\s+(?:me\s+)?(?:all\s+)?"
    r"(?:of\s+)?your\s+(?:\w+\s+)?(?:instructions|rules|guidelines|programming|configuration|"
    r"prompt)\b",
    r"\b(?:montre|affiche|donne|revele|zeig\w*|nenne|gib|muestra\w*|dime|revela|mostra\w*|dimmi|"
    r"rivela|mostre|revele)\W+(?:\w+\W+)?(?:tes|vos|deine|tus|le tue|i tuoi|suas)\s+(?:\w+\s+)?"
    r"(?:instructions|consignes|regles|anweisungen|regeln|instrucciones|reglas|istruzioni|"
    r"regole|instrucoes|regras)\b",
)
JAILBREAK = _signal(
    "jailbreak_persona", 0.8,
    "dan,anything now,mode,jailbr,unfilter,uncensor,unrestrict,amoral,evil,unethical,"
    "entwicklermodus,antigpt,betterdan,machiavel",
    r"\bdo anything now\b|\b(?:you are|you're|act as|become|enable|activate|enter|switch to|"
    r"play)\s+(?:now\s+)?(?:a\s+|an\s+|the\s+)?dan\b|\bdan\s+(?:mode|\d+(?:\.\d+)?)\b|"
    r"\bbetterdan\b|\bantigpt\b",
    r"\b(?:developer|dev|god|sudo|jailbreak|unrestricted) mode (?:enabled|output|response|"
    r"activated|is on)|\b(?:simulate|you are (?:now )?in|you're (?:now )?in|act as \w+ with|"
    r"now in) (?:developer|dev|god|sudo|jailbreak|unrestricted) mode\b",
    r"\b(?:tu es|vous etes|du bist|ahora estas|ora sei|agora voce esta)\s+(?:maintenant\s+|jetzt\s+"
    r"|nun\s+)?(?:en\s+|im\s+|en\s+el\s+|in\s+|em\s+)?(?:mode developpeur|entwicklermodus|modo "
    r"desarrollador|modalita sviluppatore|modo desenvolvedor)",
    r"\bjailbroken\b|\b(?:unfiltered|uncensored|unrestricted|unaligned|amoral|unethical|evil)\s+"
    r"(?:ai|assistant|chatbot|model|bot|llm|version|persona|character|confidant)\b|machiavellian",
)
JAILBREAK_WORD = _signal(
    "jailbreak_word", 0.3, "jailbr,developer mode,mode developpeur,entwicklermodus,desarroll,"
    "sviluppatore,desenvolvedor,god mode", r"\bjailbreak|developer mode|mode developpeur|"
    r"entwicklermodus|modo desarrollador|modalita sviluppatore|modo desenvolvedor|god mode")
NO_RESTRICTIONS = _signal(
    "no_restrictions", 0.4, "no ,without,free of,free from,zero,sans,aucune,ohne,keine,sin ,senza,sem ",
    r"\b(?:no|without(?: any)?|free (?:of|from)|zero)\s+(?:\w+\s+)?(?:restrictions|limitations|"
    r"limits|filters|filtering|censorship|rules|ethical (?:guidelines|constraints|boundaries)|"
    r"moral (?:constraints|compass|guidelines)|safeguards|guardrails)\b",
    r"\b(?:sans|aucune?)\s+(?:aucune\s+)?(?:restrictions?|limites?|filtres?|censure|regles?)\b|"
    r"\b(?:ohne|keine)\s+(?:jegliche\s+|irgendwelche\s+)?(?:einschrankungen|regeln|filter|"
    r"zensur|grenzen|richtlinien)\b|\bsin\s+(?:ninguna\s+|ningun\s+)?(?:restricciones|"
    r"restriccion|limites|filtros|censura|reglas)\b|\bsenza\s+(?:alcuna\s+|nessuna\s+)?"
    r"(?:restrizioni|limiti|filtri|censura|regole)\b|\bsem\s+(?:nenhuma\s+)?(?:restricoes|"
    r"limites|filtros|censura|regras)\b",
)
NOT_BOUND = _signal(
    "not_bound", 0.6, "bound,free,restricted,limited,anything,regles,gebunden,befreit,sujeto,"
    "libre,vincolat,libero,obligado,livre,policies",
    r"\b(?:not|no longer|never) (?:be )?(?:bound|restricted|limited|constrained) by\b|"
    r"\b(?:free|freed|liberated|released|broken free) (?:from|of) (?:all |any |your |the )?"
    r"(?:\w+ )?(?:rules|restrictions|constraints|guidelines|limitations|shackles|chains|"
    r"policies|programming)\b|\b(?:you|u) (?:can|will|must) (?:do|say) anything\b|"
    r"\bdon'?t have to (?:follow|abide by|obey) (?:any|the|your)\b",
    r"\blibere? de (?:toutes )?(?:tes|les|vos) (?:regles|restrictions|contraintes)\b|"
    r"\bn'es plus (?:limite|contraint|soumis)|\bnicht (?:mehr )?an (?:\w+ )?(?:regeln|"
    r"richtlinien|einschrankungen) gebunden|\bvon allen (?:regeln|einschrankungen) befreit|"
    r"\bno (?:estas|tienes que) (?:sujeto|limitado|obligado)|\blibre de (?:todas )?(?:las |tus )"
    r"?(?:reglas|restricciones)|\bnon sei piu (?:vincolato|limitato)|\blibero da (?:tutte )?"
    r"(?:le )?(?:regole|restrizioni)|\blivre de (?:todas )?(?:as )?(?:regras|restricoes)",
)
PERSONA = _signal(
    "persona_switch", 0.3, "you,pretend,act as,roleplay,role-play,character,tu ,fais,joue,du ,"
    "ahora,finge,actua,ora ,d'ora,fingi,agora,finja",
    r"\b(?:you are now|you're now|from now on,? you|pretend (?:you are|to be|that you)|act as if|"
    r"roleplay as|role-play as|imagine you are|stay in character|never break character|"
    r"tu es maintenant|a partir de maintenant,? tu|fais semblant|joue le role|du bist (?:jetzt|"
    r"nun|ab jetzt)|ab jetzt bist du|tu so,? als|ahora eres|a partir de ahora,? (?:eres|seras)|"
    r"finge (?:que eres|ser)|actua como si|ora sei|d'ora in poi,? (?:sei|sarai)|fingi di essere|"
    r"agora voce e|finja (?:que|ser))\b",
)
SAFETY_OFF = _signal(
    "safety_off", 0.7, "disabl,turn off,deactiv,switch off,bypass,remov,circumvent,overrid,"
    "desactiv,contourn,supprim,deaktivier,umgeh,schalte,omite,evita,elimina,salta,disattiv,"
    "aggira,rimuov,ignor",
    r"\b(?:disable|turn off|deactivate|switch off|bypass|remove|circumvent|override|ignore|"
    r"desactive[rz]?|contourne[rz]?|supprime[rz]?|deaktivier\w*|umgeh\w*|schalte|desactiva\w*|"
    r"omite|evita|elimina|salta|disattiva|aggira|rimuovi|desative|contorne)\b(?:\W+\w+){0,2}?"
    r"\W+(?:your|tes|vos|deine|ihre|tus|sus|i tuoi|le tue|seus|suas|the|les|die|los|las|i|le|os|"
    r"as|all|any)?\W*(?:safety|content|ethical|moral|security|sicherheits|de seguridad|"
    r"di sicurezza|de securite)?\W*(?:filters?|guardrails|safeguards|content polic(?:y|ies)|"
    r"safety (?:guidelines|measures|protocols|settings|training)|moderation|alignment|"
    r"censorship|filtres|garde-fous|filter|schutzmechanismen|filtros|salvaguardas|filtri|"
    r"protezioni)\b",
)
NEW_INSTRUCTIONS = _signal(
    "new_instructions", 0.45, "instruc,task,role,goal,objective,mission,anweisung,istruz,"
    "aufgabe,tache,tarea,compito,supersede",
    r"\b(?:new|updated|real|actual|true) instructions?\s*:|\byour new (?:task|instructions|role|"
    r"goal|objective|purpose|mission) (?:is|are|:)|\bthe following instructions supersede|"
    r"\b(?:nouvelles instructions|neue anweisungen|nuevas instrucciones|nuove istruzioni|novas "
    r"instrucoes)\s*:|\b(?:ta nouvelle (?:tache|mission)|deine neue aufgabe|tu nueva (?:tarea|"
    r"mision)|il tuo nuovo (?:compito|ruolo)) (?:est|ist|es|e)\b",
)
SYSTEM_MARKER = _signal(
    "system_marker", 0.45, "<|,[inst,<<sys,system,admin,root,sudo,end of,begin,</,[/",
    r"<\|(?:im_start|im_end|system|endoftext|start_header_id)\|?>|\[/?inst\]|<</?sys>>|"
    r"(?:^|\n)\s*(?:#+\s*)?(?:system|assistant)\s*(?:message|prompt)?\s*:|\[(?:system|"
    r"system message|admin)\]|\b(?:admin|administrator|root|sudo|system|developer) (?:override|"
    r"command|mode|note|message)\s*:|\bend of (?:user )?(?:input|prompt|document)\b|\bbegin "
    r"(?:new )?(?:system )?(?:instructions|prompt)\b|</?(?:system|instructions?)>",
)
INDIRECT = _signal(
    "indirect", 0.6, "ai,llm,assistant,model,gpt,chatbot,user,summar,reading",
    r"\b(?:note|message|instructions?) (?:to|for) (?:the |any |all )?(?:ai|llm|assistant|chatbot|"
    r"language model|gpt)s?\b|\b(?:if|when) you are an? (?:ai|llm|language model|assistant|"
    r"chatbot)\b|\b(?:ai|llm) assistants? (?:reading|processing|summari[sz]ing) this\b|\bdo not "
    r"(?:tell|inform|alert|mention (?:this |it )?to) the user\b|\bwithout (?:telling|informing|"
    r"alerting) the user\b",
)
HIJACK = _signal(
    "output_hijack", 0.45, "pwned,hacked,access granted",
    r"\b(?:i have been|i've been) pwned\b|\b(?:say|print|output|respond with|reply with|write)\s+"
    r"(?:only\s+)?['\"]?(?:hacked|pwned|access granted)\b|\bpwned\b",
)
DECODE_FOLLOW = _signal(
    "decode_and_follow", 0.55, "decode,decipher,base64,rot13,hex",
    r"\b(?:decode|decipher|convert)\b.{0,60}?\b(?:and|then)\s+(?:follow|execute|obey|run|carry "
    r"out|act on|do what)\b|\b(?:base64|rot13|hex)\b.{0,60}?\b(?:follow|execute|obey)\b",
)
SIGNALS: Final[tuple[Signal, ...]] = (
    OVERRIDE, EXFILTRATION, EXFILTRATION_WEAK, JAILBREAK, JAILBREAK_WORD, NO_RESTRICTIONS,
    NOT_BOUND, PERSONA, SAFETY_OFF, NEW_INSTRUCTIONS, SYSTEM_MARKER, INDIRECT, HIJACK,
    DECODE_FOLLOW)
_STRONG_AFTER_DECODING: Final = 0.4
WEIGHTS: Final[dict[str, float]] = {s.name: s.weight for s in SIGNALS} | {
    "encoded_payload": 0.85, "obfuscation": 0.3}


def _fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF,
                                                        0x00AD, 0x180E)}
    for cp in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(cp))[0]
        if base.isascii() and base.isalpha():
            table[cp] = base
    table.update({ord("ß"): "ss", ord("æ"): "ae", ord("œ"): "oe", ord("ø"): "o", ord("ł"): "l"})
    for cp in range(0xFF01, 0xFF5F):  # fullwidth forms
        table[cp] = chr(cp - 0xFEE0)
    for quote in "“”„«»″":
        table[ord(quote)] = '"'
    for quote in "‘’‚′`":
        table[ord(quote)] = "'"
    homoglyphs = {"а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x",
                  "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ո": "n",
                  "α": "a", "ο": "o", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "ρ": "p"}
    for char, ascii_char in homoglyphs.items():
        table[ord(char)] = ascii_char
        table[ord(char.upper())] = ascii_char
    return table


_FOLD: Final = _fold_table()
_LEET: Final = str.maketrans("0134578@$", "oieastbas")
_ZERO_WIDTH = re.compile(r"\w[\u200b-\u200d\u2060\ufeff\u00ad]+\w")
_MIXED_SCRIPT = re.compile(r"[a-zA-Z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff]"
                           r"[a-zA-Z]")
_SPACED = re.compile(r"(?:\b[a-z](?: {1,3}|[._*-])){5,}[a-z]\b")
_LEETISH = re.compile(r"[a-z][013457@$]+[a-z]")
_SQUASHED = re.compile(r"ignore(?:all|the|your|any)*(?:previous|prior|above|earlier)"
                       r"(?:instructions|prompts?|rules)|systemprompt|developermode|doanythingnow")
_BASE64 = re.compile(r"(?<![\w+/])[A-Za-z0-9+/]{24,}={0,2}(?![\w+/])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){16,}\b")
_QUOTED = re.compile(r"\"[^\"\n]{3,300}\"|(?<!\w)'[^'\n]{3,300}'(?!\w)")
_META = re.compile(
    r"\b(?:translat\w*|tradu\w+|ubersetz\w*|explain\w*|expliqu\w*|erklar\w*|explica\w*|spiega\w*|"
    r"what does|what do|que veut dire|signifie|bedeutet|significa|meaning|means?|example|"
    r"classif\w+|detect\w*|flag\w*|regex|phrase|sentence|string|quote[sd]?|blocklist|paper)\b")


def fold(text: str) -> str:
    """Lower case, accents and look-alike letters mapped to ASCII, zero-width marks removed."""
    text = text.lower()
    return text if text.isascii() else text.translate(_FOLD)


def _fired(text: str, quoted: list[tuple[int, int]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for signal in SIGNALS:
        if not any(key in text for key in signal.keys):
            continue
        for m in signal.pattern.finditer(text):
            if not any(start <= m.start() and m.end() <= end for start, end in quoted):
                found[signal.name] = signal.weight
                break
    return found


def _decoded_payloads(text: str) -> list[str]:
    payloads: list[str] = []
    for m in _BASE64.finditer(text):
        blob = m.group()
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        payloads.append(raw.decode("utf-8", "replace"))
    for m in _HEX.finditer(text):
        payloads.append(bytes.fromhex(re.sub(r"[ :]", "", m.group())).decode("utf-8", "replace"))
    return [p for p in payloads if sum(ch.isprintable() for ch in p) >= 0.9 * len(p)]


def assess(text: str, *, _depth: int = 0) -> Assessment:
    """Score one text for prompt injection: 0 (none seen) to 1 (several strong signals)."""
    folded = fold(text)
    quoted: list[tuple[int, int]] = []
    if _META.search(folded):
        quoted = [m.span() for m in _QUOTED.finditer(folded)]
    found = _fired(folded, quoted)
    if not text.isascii() and (_ZERO_WIDTH.search(text) or _MIXED_SCRIPT.search(text)):
        found["obfuscation"] = WEIGHTS["obfuscation"]
    if _SPACED.search(folded):
        squashed = re.sub(r"[^a-z]", "", folded)
        if _SQUASHED.search(squashed):
            found["obfuscation"] = WEIGHTS["obfuscation"]
            found["override"] = WEIGHTS["override"]
    if _LEETISH.search(folded):
        for name, weight in _fired(folded.translate(_LEET), quoted).items():
            found.setdefault(name, weight)
            found["obfuscation"] = WEIGHTS["obfuscation"]
    if _depth == 0 and (len(text) >= 24):
        for payload in _decoded_payloads(text):
            if assess(payload, _depth=1).score >= _STRONG_AFTER_DECODING:
                found["encoded_payload"] = WEIGHTS["encoded_payload"]
                break
    score = 1.0 - math.prod(1.0 - weight for weight in found.values())
    return Assessment(round(score, 4), tuple(sorted(found)))
