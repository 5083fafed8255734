"""Age and sex restrictions of ICD-10-CM codes, by code range.

The tabular list does not state age or sex conflicts as data; CMS's Medicare Code Editor
(MCE) does, through its edit categories "Age conflict" (newborn, pediatric, maternity,
adult) and "Sex conflict". The ranges below follow those categories at the category and
block level (the MCE also lists single codes, which this table does not try to repeat),
so they are a conservative subset: a code listed here is restricted in the MCE, while a
code not listed may still carry a single-code MCE edit. The coding engine treats them as
edits a coder should look at, not as hard rejections.

Ages are in completed years: newborn 0, pediatric 0-17, maternity 9-64, adult 15-124.
"""

from __future__ import annotations

AGE_GROUPS: dict[str, tuple[int, int]] = {
    "newborn": (0, 0),
    "pediatric": (0, 17),
    "maternity": (9, 64),
    "adult": (15, 124),
}

# (first, last) inclusive ranges of undotted code prefixes.
_FEMALE: tuple[tuple[str, str], ...] = (
    ("C51", "C58"),  # malignant neoplasms of female genital organs
    ("D06", "D06"),  # carcinoma in situ of cervix uteri
    ("D070", "D073"),  # carcinoma in situ of other female genital organs
    ("D25", "D28"),  # benign neoplasms of female genital organs
    ("D39", "D39"),  # uncertain behaviour, female genital organs
    ("E28", "E28"),  # ovarian dysfunction
    ("N70", "N98"),  # diseases of female pelvic organs and genital tract
    ("O00", "O9A"),  # pregnancy, childbirth and the puerperium
    ("Q50", "Q52"),  # congenital malformations of female genital organs
    ("R87", "R87"),  # abnormal findings in specimens from female genital organs
    ("Z014", "Z014"),  # gynecological examination
    ("Z124", "Z124"),  # screening for malignant neoplasm of cervix
    ("Z32", "Z36"),  # pregnancy test, supervision, antenatal screening
    ("Z37", "Z37"),  # outcome of delivery (coded on the mother)
    ("Z39", "Z39"),  # postpartum care
    ("Z3A", "Z3A"),  # weeks of gestation
    ("Z8542", "Z8544"),  # personal history of cancer of female genital organs
)
_MALE: tuple[tuple[str, str], ...] = (
    ("B260", "B260"),  # mumps orchitis
    ("C60", "C63"),  # malignant neoplasms of male genital organs
    ("D074", "D076"),  # carcinoma in situ of male genital organs
    ("D29", "D29"),  # benign neoplasms of male genital organs
    ("D40", "D40"),  # uncertain behaviour, male genital organs
    ("E29", "E29"),  # testicular dysfunction
    ("N40", "N53"),  # diseases of male genital organs
    ("Q53", "Q55"),  # congenital malformations of male genital organs
    ("R86", "R86"),  # abnormal findings in specimens from male genital organs
    ("Z125", "Z125"),  # screening for malignant neoplasm of prostate
    ("Z8545", "Z8549"),  # personal history of cancer of male genital organs
)
_AGE: tuple[tuple[str, str, str], ...] = (
    ("P00", "P96", "newborn"),  # certain conditions originating in the perinatal period
    ("Z38", "Z38", "newborn"),  # liveborn infants by place of birth
    ("Z051", "Z059", "newborn"),  # observation of newborn for suspected conditions
    ("O00", "O9A", "maternity"),
    ("Z32", "Z36", "maternity"),
    ("Z37", "Z37", "maternity"),
    ("Z39", "Z39", "maternity"),
    ("Z3A", "Z3A", "maternity"),
)


def _within(bare: str, first: str, last: str) -> bool:
    head = bare[: max(len(first), len(last))]
    return first <= head <= last if len(bare) >= len(first) else False


def age_sex_restriction(code: str) -> dict[str, str]:
    """``{"sex": "female"|"male", "age": group}`` for the code, or ``{}``."""
    bare = code.replace(".", "").upper()
    out: dict[str, str] = {}
    if any(_within(bare, a, b) for a, b in _FEMALE):
        out["sex"] = "female"
    elif any(_within(bare, a, b) for a, b in _MALE):
        out["sex"] = "male"
    for first, last, group in _AGE:
        if _within(bare, first, last):
            out["age"] = group
            break
    return out


def conflicts(restriction: dict[str, str], age: float | None, sex: str | None) -> list[str]:
    """Coder-readable reasons why the patient's age or sex conflicts with the code."""
    reasons: list[str] = []
    want_sex = restriction.get("sex")
    if want_sex and sex and sex.lower() in ("male", "female") and sex.lower() != want_sex:
        reasons.append(f"code is for {want_sex} patients only (patient is {sex.lower()})")
    group = restriction.get("age")
    if group and age is not None:
        low, high = AGE_GROUPS[group]
        if not low <= int(age) <= high:
            reasons.append(
                f"code is in the MCE {group} age group ({low}-{high} years; patient is {int(age)})"
            )
    return reasons
