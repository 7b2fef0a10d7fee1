"""Sales regions: a region is a set of countries (ISO 3166-1 alpha-2), the way sales organisations split
the world between their teams. Filtering leads by region (``GET /leads?region=EMEA``) is filtering by
the company's country being one of its countries.

- **EMEA**: Europe (the EU, EFTA, the UK, the Balkans, Eastern Europe, Russia, Turkey, the Caucasus and
  the European dependencies), the Middle East and Africa (the Indian Ocean islands with it);
- **NA** (North America): the United States with its territories, Canada, Bermuda, Greenland, and
  Saint Pierre and Miquelon;
- **LATAM** (Latin America): Mexico, Central America, South America and the Caribbean;
- **APAC** (Asia-Pacific): Central, South, East and South-East Asia, Australia, New Zealand and the
  Pacific islands.

Every assigned code but Antarctica's (``AQ``) is in exactly one region (a test checks it); the
uninhabited dependencies go with their nearest region.
"""

from __future__ import annotations

from enum import StrEnum


class Region(StrEnum):
    EMEA = "EMEA"
    NA = "NA"
    LATAM = "LATAM"
    APAC = "APAC"

    @property
    def countries(self) -> frozenset[str]:
        return REGIONS[self]


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


REGIONS: dict[Region, frozenset[str]] = {
    Region.EMEA: _codes(
        # Europe
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU "
        "LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA TR AM AZ GE BV "
        # Middle East
        "AE BH IL IQ IR JO KW LB OM PS QA SA SY YE "
        # Africa and its islands
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR "
        "MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TF TG TN TZ UG YT ZA ZM ZW IO"
    ),
    Region.NA: _codes("US CA BM GL PM UM AS GU MP PR VI"),
    Region.LATAM: _codes(
        # Mexico, Central and South America
        "MX BZ CR GT HN NI PA SV AR BO BR CL CO EC FK GF GY PE PY SR UY VE GS "
        # The Caribbean
        "AG AI AW BB BL BQ BS CU CW DM DO GD GP HT JM KN KY LC MF MQ MS SX TC TT VC VG"
    ),
    Region.APAC: _codes(
        # Central, South, East and South-East Asia
        "AF KZ KG TJ TM UZ BD BT IN LK MV NP PK CN HK MO MN JP KP KR TW BN KH ID LA MM MY PH SG TH TL VN "
        # Oceania
        "AU NZ CC CX HM NF FJ NC PG SB VU FM KI MH NR PW CK NU PF PN TK TO TV WF WS"
    ),
}
