"""The hosted apply pages and the career-site jobs list (docs/apply-pages.md)."""
