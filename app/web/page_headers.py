"""The headers of every HTML page the relay serves (apply, connect, the OAuth callback, the
dashboard): a Content-Security-Policy that allows nothing the page does not name, no MIME
sniffing, no caching (each page holds a token, a candidate's answers or a delivery's data), and
the page's own Referrer-Policy. Each page passes only the sources it needs
(docs/apply-pages.md, docs/connections.md "The connect page", docs/dashboard.md)."""

from __future__ import annotations


def page_headers(
    sources: dict[str, str], *, referrer: str = "same-origin", deny_framing: bool = False
) -> dict[str, str]:
    """`sources`: CSP directives beyond `default-src 'none'` (e.g. {"style-src": "'self'"});
    framing and `<base>` are refused unless a directive says otherwise. `deny_framing` adds the
    legacy X-Frame-Options for browsers that predate frame-ancestors."""
    policy = {"default-src": "'none'", **sources}
    policy.setdefault("frame-ancestors", "'none'")
    policy.setdefault("base-uri", "'none'")
    headers = {
        "Content-Security-Policy": "; ".join(f"{directive} {value}" for directive, value in policy.items()),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": referrer,
        "Cache-Control": "no-store",
    }
    if deny_framing:
        headers["X-Frame-Options"] = "DENY"
    return headers
