"""Sign-in for browsers and apps: `/authorize` (RFC 6749 section 4.1 with PKCE), the hosted
login and consent pages, the issuer's login session, and RP-initiated logout.

- `request.py`: the authorization request, checked as RFC 6749, RFC 7636 and RFC 9700 say.
- `pages.py`: server-rendered pages (Jinja2) with their security headers, and the cookies.
- `forms.py`: the pages' forms: signed state bound to a CSRF cookie, origin checks.
- `flow.py`: `/authorize`, the login and consent forms, codes.
- `logout.py`: the end-session endpoint.
"""
