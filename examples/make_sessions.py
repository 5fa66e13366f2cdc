"""Writes examples/sessions.csv: 3,000 synthetic web sessions with a yes/no purchase label, shaped
like public session tables (page counts, durations, month, visitor type, weekend flag). Used by the
README's "Train on your own table" example; rerun to regenerate it (seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(2026)
n = 3000
month = rng.choice(["Feb", "Mar", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], n)
visitor = rng.choice(["Returning_Visitor", "New_Visitor", "Other"], n, p=[0.82, 0.16, 0.02])
device = rng.choice(["desktop", "mobile", "tablet"], n, p=[0.55, 0.38, 0.07])
weekend = rng.random(n) < 0.23
page_views = rng.poisson(6, n) + 1
product_views = rng.poisson(1 + page_views * 0.8)
duration_s = np.round(rng.gamma(2.0, 60 + 25 * product_views), 1)
bounce_rate = np.round(np.clip(rng.beta(1.2, 12, n) * (1 + 2 / page_views), 0, 1), 4)
logit = (-3.2 + 0.09 * product_views + 0.004 * np.minimum(duration_s, 600) - 6 * bounce_rate
         + 0.5 * (visitor == "New_Visitor") + 0.6 * np.isin(month, ["Nov", "Dec"]) - 0.3 * (device == "mobile"))
purchased = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
frame = pd.DataFrame({
    "session_id": np.arange(1, n + 1), "month": month, "visitor_type": visitor, "device": device,
    "weekend": np.where(weekend, "TRUE", "FALSE"), "page_views": page_views, "product_views": product_views,
    "duration_s": duration_s, "bounce_rate": bounce_rate, "purchased": purchased,
})
out = Path(__file__).with_name("sessions.csv")
frame.to_csv(out, index=False)
print(f"{out}: {n} sessions, {(purchased == 'yes').mean():.1%} purchased")
