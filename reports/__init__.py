"""Reports: text summaries and matplotlib charts built from engine results."""
