"""The words the apply pages write themselves, in English, French, Dutch, Finnish, Spanish and
German (docs/apply-pages.md, "Languages"); the questions appear as the ATS wrote them. The
language is `?lang=`, then the browser's `Accept-Language`, then the connection's default."""

from __future__ import annotations

import re

LANGS = ("en", "fr", "nl", "fi", "es", "de")

_KEYS = (
    "first_name last_name email phone cv cover_letter required optional submit consent privacy_link "
    "accepted_types max_size shown_if answered choose yes no thanks_title thanks_body not_found_title "
    "not_found_body errors_title reattach jobs_title next_page apply no_jobs unavailable_title "
    "unavailable_body about_you questions_title"
).split()

_T: dict[str, tuple[str, ...]] = {
    "en": (
        "First name",
        "Last name",
        "Email",
        "Phone",
        "CV",
        "Cover letter",
        "required",
        "optional",
        "Send my application",
        "I agree that my data is processed for this application.",
        "Privacy notice",
        "Accepted types",
        "Maximum size",
        "Answer only if",
        "is",
        "Choose…",
        "Yes",
        "No",
        "Thank you",
        "Your application was received.",
        "Job not found",
        "This job does not exist or no longer takes applications.",
        "Please correct the fields marked below",
        "For your security, files are not kept: please attach your CV (and any file) again.",
        "Open positions",
        "Next page",
        "Apply",
        "No open positions at the moment.",
        "Temporarily unavailable",
        "The application form cannot be loaded right now; please try again in a few minutes.",
        "About you",
        "Questions",
    ),
    "fr": (
        "Prénom",
        "Nom",
        "E-mail",
        "Téléphone",
        "CV",
        "Lettre de motivation",
        "obligatoire",
        "facultatif",
        "Envoyer ma candidature",
        "J'accepte que mes données soient traitées pour cette candidature.",
        "Politique de confidentialité",
        "Types acceptés",
        "Taille maximale",
        "Répondre seulement si",
        "est",
        "Choisir…",
        "Oui",
        "Non",
        "Merci",
        "Votre candidature a bien été reçue.",
        "Offre introuvable",
        "Cette offre n'existe pas ou n'accepte plus de candidatures.",
        "Veuillez corriger les champs signalés ci-dessous",
        "Par sécurité, les fichiers ne sont pas conservés : joignez à nouveau votre CV (et vos fichiers).",
        "Offres d'emploi",
        "Page suivante",
        "Postuler",
        "Aucune offre pour le moment.",
        "Temporairement indisponible",
        "Le formulaire ne peut pas être chargé ; réessayez dans quelques minutes.",
        "Vous",
        "Questions",
    ),
    "nl": (
        "Voornaam",
        "Achternaam",
        "E-mail",
        "Telefoon",
        "Cv",
        "Motivatiebrief",
        "verplicht",
        "optioneel",
        "Sollicitatie versturen",
        "Ik ga akkoord met de verwerking van mijn gegevens voor deze sollicitatie.",
        "Privacyverklaring",
        "Toegestane bestandstypen",
        "Maximale grootte",
        "Alleen beantwoorden als",
        "is",
        "Kies…",
        "Ja",
        "Nee",
        "Bedankt",
        "Je sollicitatie is ontvangen.",
        "Vacature niet gevonden",
        "Deze vacature bestaat niet of neemt geen sollicitaties meer aan.",
        "Verbeter de hieronder gemarkeerde velden",
        "Voor je veiligheid bewaren we geen bestanden: voeg je cv (en andere bestanden) opnieuw toe.",
        "Vacatures",
        "Volgende pagina",
        "Solliciteren",
        "Er zijn op dit moment geen vacatures.",
        "Tijdelijk niet beschikbaar",
        "Het formulier kan nu niet worden geladen; probeer het over enkele minuten opnieuw.",
        "Over jou",
        "Vragen",
    ),
    "fi": (
        "Etunimi",
        "Sukunimi",
        "Sähköposti",
        "Puhelin",
        "CV",
        "Saatekirje",
        "pakollinen",
        "vapaaehtoinen",
        "Lähetä hakemus",
        "Hyväksyn tietojeni käsittelyn tätä hakemusta varten.",
        "Tietosuojaseloste",
        "Sallitut tiedostotyypit",
        "Enimmäiskoko",
        "Vastaa vain, jos",
        "on",
        "Valitse…",
        "Kyllä",
        "Ei",
        "Kiitos",
        "Hakemuksesi on vastaanotettu.",
        "Työpaikkaa ei löytynyt",
        "Tätä työpaikkaa ei ole tai siihen ei enää voi hakea.",
        "Korjaa alla merkityt kentät",
        "Turvallisuussyistä tiedostoja ei säilytetä: liitä CV (ja muut tiedostot) uudelleen.",
        "Avoimet työpaikat",
        "Seuraava sivu",
        "Hae",
        "Avoimia työpaikkoja ei juuri nyt ole.",
        "Tilapäisesti poissa käytöstä",
        "Lomaketta ei voi nyt ladata; yritä muutaman minuutin kuluttua uudelleen.",
        "Tietosi",
        "Kysymykset",
    ),
    "es": (
        "Nombre",
        "Apellidos",
        "Correo electrónico",
        "Teléfono",
        "CV",
        "Carta de presentación",
        "obligatorio",
        "opcional",
        "Enviar mi candidatura",
        "Acepto que mis datos se traten para esta candidatura.",
        "Política de privacidad",
        "Tipos aceptados",
        "Tamaño máximo",
        "Responder solo si",
        "es",
        "Elegir…",
        "Sí",
        "No",
        "Gracias",
        "Hemos recibido tu candidatura.",
        "Oferta no encontrada",
        "Esta oferta no existe o ya no acepta candidaturas.",
        "Corrige los campos marcados abajo",
        "Por seguridad no guardamos los archivos: adjunta de nuevo tu CV (y los demás archivos).",
        "Ofertas de empleo",
        "Página siguiente",
        "Inscribirme",
        "No hay ofertas en este momento.",
        "No disponible temporalmente",
        "El formulario no se puede cargar ahora; inténtalo de nuevo en unos minutos.",
        "Sobre ti",
        "Preguntas",
    ),
    "de": (
        "Vorname",
        "Nachname",
        "E-Mail",
        "Telefon",
        "Lebenslauf",
        "Anschreiben",
        "Pflichtfeld",
        "optional",
        "Bewerbung absenden",
        "Ich willige in die Verarbeitung meiner Daten für diese Bewerbung ein.",
        "Datenschutzerklärung",
        "Erlaubte Dateitypen",
        "Maximale Größe",
        "Nur beantworten, wenn",
        "ist",
        "Bitte wählen…",
        "Ja",
        "Nein",
        "Vielen Dank",
        "Ihre Bewerbung ist eingegangen.",
        "Stelle nicht gefunden",
        "Diese Stelle gibt es nicht oder sie nimmt keine Bewerbungen mehr an.",
        "Bitte korrigieren Sie die markierten Felder",
        "Aus Sicherheitsgründen werden Dateien nicht gespeichert: "
        "bitte hängen Sie Ihren Lebenslauf (und weitere Dateien) erneut an.",
        "Offene Stellen",
        "Nächste Seite",
        "Bewerben",
        "Derzeit keine offenen Stellen.",
        "Vorübergehend nicht verfügbar",
        "Das Formular kann gerade nicht geladen werden; bitte versuchen Sie es in einigen Minuten erneut.",
        "Über Sie",
        "Fragen",
    ),
}
LABELS: dict[str, dict[str, str]] = {lang: dict(zip(_KEYS, words, strict=True)) for lang, words in _T.items()}

# The page's own refusals (app/intake/boards/apply_form.py) and the browser's checks.
_ERRORS: dict[str, tuple[str, ...]] = {
    # required, not a number, not an option, not a date, yes/no, file type, too long {n}, range {a} {b}, file size {n}
    "en": (
        "This field is required.",
        "Enter a number.",
        "Choose one of the options.",
        "Enter a date.",
        "Answer yes or no.",
        "This file type is not accepted.",
        "At most {n} characters.",
        "Enter a number between {a} and {b}.",
        "The file is larger than {n}.",
    ),
    "fr": (
        "Ce champ est obligatoire.",
        "Saisissez un nombre.",
        "Choisissez une des options.",
        "Saisissez une date.",
        "Répondez oui ou non.",
        "Ce type de fichier n'est pas accepté.",
        "{n} caractères au maximum.",
        "Saisissez un nombre entre {a} et {b}.",
        "Le fichier dépasse {n}.",
    ),
    "nl": (
        "Dit veld is verplicht.",
        "Vul een getal in.",
        "Kies een van de opties.",
        "Vul een datum in.",
        "Antwoord ja of nee.",
        "Dit bestandstype wordt niet geaccepteerd.",
        "Maximaal {n} tekens.",
        "Vul een getal tussen {a} en {b} in.",
        "Het bestand is groter dan {n}.",
    ),
    "fi": (
        "Tämä kenttä on pakollinen.",
        "Anna numero.",
        "Valitse jokin vaihtoehdoista.",
        "Anna päivämäärä.",
        "Vastaa kyllä tai ei.",
        "Tätä tiedostotyyppiä ei hyväksytä.",
        "Enintään {n} merkkiä.",
        "Anna luku väliltä {a}–{b}.",
        "Tiedosto on suurempi kuin {n}.",
    ),
    "es": (
        "Este campo es obligatorio.",
        "Introduce un número.",
        "Elige una de las opciones.",
        "Introduce una fecha.",
        "Responde sí o no.",
        "Este tipo de archivo no se acepta.",
        "Como máximo {n} caracteres.",
        "Introduce un número entre {a} y {b}.",
        "El archivo supera {n}.",
    ),
    "de": (
        "Dieses Feld ist erforderlich.",
        "Bitte eine Zahl eingeben.",
        "Bitte eine Option wählen.",
        "Bitte ein Datum eingeben.",
        "Bitte mit Ja oder Nein antworten.",
        "Dieser Dateityp wird nicht akzeptiert.",
        "Höchstens {n} Zeichen.",
        "Bitte eine Zahl zwischen {a} und {b} eingeben.",
        "Die Datei ist größer als {n}.",
    ),
}
_FIXED = {
    "required": 0,
    "must be a number": 1,
    "not one of the options": 2,
    "must be a date (YYYY-MM-DD)": 3,
    "must be yes or no": 4,
    "this file type is not accepted": 5,
}
_TOO_LONG = re.compile(r"^at most (\d+) characters$")
_RANGE = re.compile(r"^must be between (\S+) and (\S+)$")
_SIZE = re.compile(r"file larger than (\d+) bytes")


def pick(query_lang: str | None, accept_language: str | None, default: str) -> str:
    """`?lang=` first, then the best of Accept-Language (q-values honoured), then `default`."""
    if query_lang and query_lang.lower()[:2] in LANGS:
        return query_lang.lower()[:2]
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality > 0 and tag:
            ranked.append((-quality, position, tag.strip().lower()[:2]))
    for _, _, lang in sorted(ranked):
        if lang in LANGS:
            return lang
    return default if default in LANGS else "en"


def size(n: int) -> str:
    """A byte count for people, in decimal units as the config counts them (10 MB, 512 KB)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.0f} MB" if n % 1_000_000 == 0 else f"{n / 1_000_000:.1f} MB"
    return f"{max(1, n // 1000)} KB"


def error(message: str, lang: str) -> str:
    """A refusal's message in the page's language when the page knows it; the relay's own
    (English) sentence otherwise (intake's and the ATS's reasons)."""
    words = _ERRORS.get(lang, _ERRORS["en"])
    if message in _FIXED:
        return words[_FIXED[message]]
    if match := _TOO_LONG.match(message):
        return words[6].format(n=match.group(1))
    if match := _RANGE.match(message):
        return words[7].format(a=match.group(1), b=match.group(2))
    if match := _SIZE.search(message):
        return words[8].format(n=size(int(match.group(1))))
    return message


def script_messages(lang: str) -> dict[str, str]:
    """What the page's script says when the browser's checks fail (file size and type)."""
    words = _ERRORS.get(lang, _ERRORS["en"])
    return {"file_type": words[5], "file_size": words[8]}
