"""Reports: result.json, junit.xml and a self-contained report.html."""
