"""The agency catalogue: the ~3,000 institutions on the network, as `crossroads.domain.Agency`.

The primary network institutions are named (DOMAIN.md "who is on the network"); each is a
category of its own, so that a deliberation naming it names exactly that institution. The
numbered categories (CPAS, funds, payment bodies, secretariats, ...) come in the counts of
the world spec, with short stable ids ("CPAS-0042", "MUT-0007"): the k-th agency of a category
keeps its id whatever the other counts are. Secondary networks hang under their sector hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agencies import sectors as s
from agencies.spec import AgencyCounts
from crossroads.domain import Agency, AgencyId, Category, SectorCode

__all__ = [
    "BATCH",
    "CAT_BATCH",
    "CAT_CIN",
    "CAT_CPAS",
    "CAT_DG_DISABILITY",
    "CAT_FAMILY_ALLOWANCE_BODY",
    "CAT_FAMILY_FUND",
    "CAT_FEDRIS",
    "CAT_HEALTH_FUND",
    "CAT_INAMI",
    "CAT_INASTI",
    "CAT_LOCAL",
    "CAT_NATIONAL_REGISTER",
    "CAT_ONEM",
    "CAT_ONSS",
    "CAT_ONVA",
    "CAT_PAYMENT_BODY",
    "CAT_PORTAL",
    "CAT_PUBLIC_MISSION",
    "CAT_REGIONAL",
    "CAT_SECRETARIAT",
    "CAT_SECTOR_FUND",
    "CAT_SFP",
    "CAT_SPP_IS",
    "CIN",
    "DGPH",
    "FAMI",
    "FEDRIS",
    "INAMI",
    "INASTI",
    "NR",
    "NUMBERED",
    "ONEM",
    "ONSS",
    "ONVA",
    "PORTAL",
    "PRIMARY",
    "SFP",
    "SPPIS",
    "Numbered",
    "build_catalogue",
]

# ---------------------------------------------------------------- the primary network, by name
NR, PORTAL, BATCH = AgencyId("NR"), AgencyId("PORTAL"), AgencyId("BATCH")
ONSS, ONEM, INAMI, CIN = AgencyId("ONSS"), AgencyId("ONEM"), AgencyId("INAMI"), AgencyId("CIN")
SFP, FEDRIS, INASTI, SPPIS = AgencyId("SFP"), AgencyId("FEDRIS"), AgencyId("INASTI"), AgencyId("SPPIS")
FAMI, DGPH, ONVA = AgencyId("FAMI"), AgencyId("DGPH"), AgencyId("ONVA")

CAT_NATIONAL_REGISTER = Category("national_register")
CAT_PORTAL = Category("portal")
CAT_BATCH = Category("batch_channel")
CAT_ONSS = Category("onss")
CAT_ONEM = Category("onem")
CAT_INAMI = Category("inami")
CAT_CIN = Category("cin")
CAT_SFP = Category("sfp")
CAT_FEDRIS = Category("fedris")
CAT_INASTI = Category("inasti")
CAT_SPP_IS = Category("spp_is")
CAT_FAMILY_ALLOWANCE_BODY = Category("family_allowance_body")
CAT_DG_DISABILITY = Category("dg_disability")
CAT_ONVA = Category("onva")

PRIMARY: tuple[Agency, ...] = (
    Agency(NR, "National Register (identity source)", CAT_NATIONAL_REGISTER, s.SECTOR_IDENTITY),
    Agency(PORTAL, "social-security portal (employers' and citizens' access point)", CAT_PORTAL, s.SECTOR_NETWORK),
    Agency(BATCH, "batch channel (file transfer of declarations)", CAT_BATCH, s.SECTOR_NETWORK),
    Agency(ONSS, "RSZ/ONSS National Social Security Office", CAT_ONSS, s.SECTOR_EMPLOYEES),
    Agency(ONEM, "RVA/ONEM National Employment Office", CAT_ONEM, s.SECTOR_UNEMPLOYMENT),
    Agency(INAMI, "RIZIV/INAMI National Institute for Health and Disability Insurance", CAT_INAMI, s.SECTOR_HEALTH),
    Agency(CIN, "NIC/CIN National Intermutualist College", CAT_CIN, s.SECTOR_HEALTH),
    Agency(SFP, "FPD/SFP Federal Pension Service", CAT_SFP, s.SECTOR_PENSIONS),
    Agency(FEDRIS, "FEDRIS Federal Agency for Occupational Risks", CAT_FEDRIS, s.SECTOR_OCCUPATIONAL_RISKS),
    Agency(INASTI, "RSVZ/INASTI National Institute for the Self-Employed", CAT_INASTI, s.SECTOR_SELF_EMPLOYED),
    Agency(SPPIS, "POD MI/SPP IS Public Planning Service Social Integration", CAT_SPP_IS, s.SECTOR_SOCIAL_INTEGRATION),
    Agency(FAMI, "interregional family-allowance body", CAT_FAMILY_ALLOWANCE_BODY, s.SECTOR_FAMILY_ALLOWANCES),
    Agency(DGPH, "FOD SZ/SPF SS DG Persons with Disabilities", CAT_DG_DISABILITY, s.SECTOR_DISABILITY),
    Agency(ONVA, "RJV/ONVA National Annual Holiday Office", CAT_ONVA, s.SECTOR_HOLIDAY_PAY),
)

# ---------------------------------------------------------------- numbered categories
CAT_CPAS = Category("cpas")
CAT_HEALTH_FUND = Category("health_insurance_fund")
CAT_FAMILY_FUND = Category("family_allowance_fund")
CAT_PAYMENT_BODY = Category("unemployment_payment_body")
CAT_SECRETARIAT = Category("social_secretariat")
CAT_SECTOR_FUND = Category("sector_fund")
CAT_REGIONAL = Category("regional_body")
CAT_LOCAL = Category("local_body")
CAT_PUBLIC_MISSION = Category("public_mission_body")


@dataclass(frozen=True, slots=True)
class Numbered:
    """A category whose agencies are numbered: `prefix-0001`, ... under `hub` (if any)."""

    count_field: str  # the AgencyCounts field giving how many
    prefix: str
    label: str
    category: Category
    sector: SectorCode
    hub: AgencyId | None = None

    def agency_id(self, k: int) -> AgencyId:
        """The id of the k-th agency (k from 0): stable whatever the counts of others."""
        return AgencyId(f"{self.prefix}-{k + 1:04d}")


# the order here is the order of the catalogue (and of agency indices in the world)
NUMBERED: tuple[Numbered, ...] = (
    Numbered("health_insurance_funds", "MUT", "health-insurance fund", CAT_HEALTH_FUND, s.SECTOR_HEALTH, CIN),
    Numbered(
        "family_allowance_funds", "FAF", "family-allowance fund", CAT_FAMILY_FUND, s.SECTOR_FAMILY_ALLOWANCES, FAMI
    ),
    Numbered(
        "unemployment_payment_bodies", "UPB", "unemployment payment body", CAT_PAYMENT_BODY, s.SECTOR_UNEMPLOYMENT, ONEM
    ),
    Numbered("cpas", "CPAS", "OCMW/CPAS public social welfare centre", CAT_CPAS, s.SECTOR_SOCIAL_INTEGRATION, SPPIS),
    Numbered("social_secretariats", "SSA", "accredited social secretariat", CAT_SECRETARIAT, s.SECTOR_DECLARANTS),
    Numbered("sector_funds", "SF", "sector fund", CAT_SECTOR_FUND, s.SECTOR_FUNDS),
    Numbered("regional_bodies", "REG", "regional body", CAT_REGIONAL, s.SECTOR_COMPLEMENTARY_REGIONAL),
    Numbered("local_bodies", "LOC", "local body", CAT_LOCAL, s.SECTOR_COMPLEMENTARY_LOCAL),
    Numbered(
        "public_mission_bodies", "PUB", "private body with a public mission", CAT_PUBLIC_MISSION,
        s.SECTOR_COMPLEMENTARY_PUBLIC_MISSION,
    ),
)  # fmt: skip

# the first payment bodies have real names; further ones (a what-if) are numbered
_PAYMENT_BODY_NAMES = (
    "CAPAC/HVW Auxiliary Fund for the Payment of Unemployment Benefits",
    "ACV/CSC union payment body",
    "ABVV/FGTB union payment body",
    "ACLVB/CGSLB union payment body",
)


def _name(group: Numbered, k: int) -> str:
    if group.category == CAT_PAYMENT_BODY and k < len(_PAYMENT_BODY_NAMES):
        return _PAYMENT_BODY_NAMES[k]
    return f"{group.label} {k + 1}"


def _numbered(counts: AgencyCounts) -> Iterator[Agency]:
    for group in NUMBERED:
        for k in range(getattr(counts, group.count_field)):
            yield Agency(group.agency_id(k), _name(group, k), group.category, group.sector, group.hub)


def build_catalogue(counts: AgencyCounts) -> tuple[Agency, ...]:
    """Every agency of the network: the primary institutions, then each numbered category."""
    return PRIMARY + tuple(_numbered(counts))
