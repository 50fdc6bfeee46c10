"""The admin's view of one transaction's file: its parsed header and figures, and its plot.

The plot is an <img> of the API's ``plot.png`` (the admin session authenticates it), so
the change page renders without drawing anything itself.
"""

from __future__ import annotations

import json

from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from captures.analysis import SNMP_SPECTRUM_TEST_TYPE, analyse_transaction, load_transaction
from captures.models import Transaction
from captures.pnm import PnmFormatError


def parsed_panel(record: Transaction) -> SafeString:
    """Header + derived figures as JSON, and the plot, for a Transaction change page."""
    if record.pk is None:
        return format_html("<p>{}</p>", "no file yet")
    try:
        if record.pnm_test_type == SNMP_SPECTRUM_TEST_TYPE:  # no header: its analysis
            summary = analyse_transaction(record).as_dict()
        else:
            summary = load_transaction(record).as_dict(data=False)
    except (PnmFormatError, OSError) as exc:
        return format_html("<p>the stored file cannot be read: {}</p>", str(exc))
    plot_url = reverse("transaction-plot", kwargs={"transaction_id": record.transaction_id})
    return format_html(
        '<pre style="max-height:30em;overflow:auto">{}</pre>'
        '<img src="{}" alt="plot of {}" style="max-width:100%">',
        json.dumps(summary, indent=2),
        plot_url,
        record.filename,
    )
