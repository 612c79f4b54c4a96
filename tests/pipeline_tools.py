"""A user tool module for the pipeline test (loaded as `pipeline_tools:revenue`)."""

REVENUE = {"Orrin Dynamics": 812.4, "Vellum Bank": 1930.0, "Kestrel Mining": 455.9}


def revenue(company: str) -> str:
    """Fiscal 2025 revenue of a listed company.

    Args:
        company: The company's name as listed.
    """
    if company not in REVENUE:
        raise KeyError(f"no filing for {company!r}")
    return f"{company} fiscal 2025 revenue: ${REVENUE[company]} million"
