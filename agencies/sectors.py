"""The sector codes and quality codes of the synthetic world: one table, scenario data.

The reference directory files a person per sector (CBSS form I605: NISS | sector | quality
code | phase | start | end). Only the CPAS/OCMW code is sourced (sector 17, DOMAIN.md);
no public list of the other codes was found, so every other number below is an assumption
of this testbed, chosen to be distinct and stable. Quality codes follow the I605 ranges:
902 provisional, 000 definitive, 001-900 significant capacities.
"""

from __future__ import annotations

from crossroads.domain import HEAD_OF_HOUSEHOLD, QUALITY_PROVISIONAL, QualityCode, SectorCode

__all__ = [
    "QUALITY_PROVISIONAL",
    "Q_CHILD",
    "Q_COMPLEMENTARY",
    "Q_DEPENDANT",
    "Q_DISABILITY",
    "Q_EMPLOYEE",
    "Q_HEAD_OF_HOUSEHOLD",
    "Q_INSURED",
    "Q_INTEGRATION_INCOME",
    "Q_OCCUPATIONAL_VICTIM",
    "Q_RETIRED",
    "Q_SECTOR_FUND_WORKER",
    "Q_SELF_EMPLOYED",
    "Q_TEMPORARY_UNEMPLOYED",
    "Q_UNEMPLOYED",
    "SECTOR_COMPLEMENTARY_LOCAL",
    "SECTOR_COMPLEMENTARY_PUBLIC_MISSION",
    "SECTOR_COMPLEMENTARY_REGIONAL",
    "SECTOR_DECLARANTS",
    "SECTOR_DISABILITY",
    "SECTOR_EMPLOYEES",
    "SECTOR_FAMILY_ALLOWANCES",
    "SECTOR_FUNDS",
    "SECTOR_HEALTH",
    "SECTOR_HOLIDAY_PAY",
    "SECTOR_IDENTITY",
    "SECTOR_NETWORK",
    "SECTOR_OCCUPATIONAL_RISKS",
    "SECTOR_PENSIONS",
    "SECTOR_SELF_EMPLOYED",
    "SECTOR_SOCIAL_INTEGRATION",
    "SECTOR_UNEMPLOYMENT",
]

# ---------------------------------------------------------------- sectors (assumed, except 17)
SECTOR_NETWORK = SectorCode(0)  # access points: the portal and the batch channel (hold no files)
SECTOR_IDENTITY = SectorCode(1)  # the National Register
SECTOR_EMPLOYEES = SectorCode(2)  # RSZ/ONSS: employment relationships of employees
SECTOR_UNEMPLOYMENT = SectorCode(3)  # RVA/ONEM and the unemployment payment bodies
SECTOR_HEALTH = SectorCode(4)  # RIZIV/INAMI, NIC/CIN and the health-insurance funds
SECTOR_FAMILY_ALLOWANCES = SectorCode(5)  # the family-allowance body and funds
SECTOR_PENSIONS = SectorCode(6)  # FPD/SFP
SECTOR_OCCUPATIONAL_RISKS = SectorCode(7)  # FEDRIS
SECTOR_SELF_EMPLOYED = SectorCode(8)  # RSVZ/INASTI
SECTOR_DISABILITY = SectorCode(9)  # FOD SZ/SPF SS, DG persons with disabilities
SECTOR_HOLIDAY_PAY = SectorCode(10)  # RJV/ONVA
SECTOR_SOCIAL_INTEGRATION = SectorCode(17)  # POD MI/SPP IS and the CPAS/OCMW (sourced: sector 17)
SECTOR_FUNDS = SectorCode(20)  # sector funds of the joint committees
SECTOR_COMPLEMENTARY_REGIONAL = SectorCode(30)  # regional bodies granting complementary benefits
SECTOR_COMPLEMENTARY_LOCAL = SectorCode(31)  # local bodies granting complementary benefits
SECTOR_COMPLEMENTARY_PUBLIC_MISSION = SectorCode(32)  # private bodies with a public mission
SECTOR_DECLARANTS = SectorCode(40)  # accredited social secretariats (file declarations, hold no files)

# ---------------------------------------------------------------- quality codes (assumed)
Q_HEAD_OF_HOUSEHOLD = HEAD_OF_HOUSEHOLD  # family allowances: the parent who receives them (001)
Q_CHILD = QualityCode(2)  # family allowances: the child who gives the right
Q_EMPLOYEE = QualityCode(10)
Q_UNEMPLOYED = QualityCode(20)
Q_TEMPORARY_UNEMPLOYED = QualityCode(21)
Q_INSURED = QualityCode(30)  # health insurance: insured in one's own right ("titulaire")
Q_DEPENDANT = QualityCode(31)  # health insurance: dependant of an insured person
Q_RETIRED = QualityCode(40)
Q_SELF_EMPLOYED = QualityCode(50)
Q_DISABILITY = QualityCode(60)
Q_OCCUPATIONAL_VICTIM = QualityCode(70)
Q_INTEGRATION_INCOME = QualityCode(80)
Q_SECTOR_FUND_WORKER = QualityCode(85)
Q_COMPLEMENTARY = QualityCode(90)  # beneficiary of a complementary (regional, local, private) benefit
