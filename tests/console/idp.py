"""Minimal, strict OpenID Connect provider for console login tests.

Authorization code flow with mandatory PKCE (S256 only) for one registered client,
a login page with a "Sign in as <user>" button per configured user, RS256 id_tokens
and a JWKS endpoint. Needs PyJWT with crypto: pip install 'pyjwt[crypto]>=2.8,<3'

    python tests/console/idp.py --client-id airlock-console \\
        --redirect-uri http://127.0.0.1:PORT/console/oidc/callback \\
        --users '{"ada": ["sre"], "bob": ["dev"]}' \\
        [--client-secret S] [--port 0] [--groups-claim groups] [--ttl 300]

Binds 127.0.0.1, prints one line `issuer http://127.0.0.1:<port>` to stdout, then
serves until SIGTERM/SIGINT; request logs go to stderr. `GET /_stats` returns counts
of issued codes/tokens and the last code_challenge_method, to assert PKCE was used.
"""
import argparse, base64, hashlib, hmac, html, json, re, secrets, signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

PKCE_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CODE_TTL = 60


class OAuthError(Exception):
    """An OAuth error. At /authorize, `fatal` ones are shown as a page, never redirected."""

    def __init__(self, error, desc, status=400, headers=(), fatal=False):
        super().__init__(desc)
        self.error, self.desc, self.status, self.headers, self.fatal = error, desc, status, headers, fatal


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    def __init__(self, args):
        self.args, self.users, self.issuer = args, json.loads(args.users), ""
        if not isinstance(self.users, dict) or not all(
                isinstance(g, list) and all(isinstance(x, str) for x in g) for g in self.users.values()):
            raise SystemExit("--users must be a JSON object of username -> list of group names")
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        pub = self.key.public_key().public_numbers()
        n, e = (v.to_bytes((v.bit_length() + 7) // 8, "big") for v in (pub.n, pub.e))
        self.jwks = {"keys": [{"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                               "n": b64url(n), "e": b64url(e)}]}
        self.codes, self.lock = {}, threading.Lock()
        self.stats = {"codes_issued": 0, "tokens_issued": 0, "last_code_challenge_method": None}

    def discovery(self):
        i = self.issuer
        auth = ["client_secret_post", "client_secret_basic"] if self.args.client_secret else ["none"]
        return {"issuer": i, "authorization_endpoint": f"{i}/authorize", "token_endpoint": f"{i}/token",
                "jwks_uri": f"{i}/jwks.json", "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": auth,
                "scopes_supported": ["openid", "profile", "groups"]}

    def validate_authorize(self, p):
        if p.get("client_id") != self.args.client_id:
            raise OAuthError("invalid_request", "unknown client_id", fatal=True)
        if p.get("redirect_uri") != self.args.redirect_uri:
            raise OAuthError("invalid_request", "redirect_uri is not the registered one", fatal=True)
        checks = [(p.get("response_type") == "code", "response_type must be 'code'"),
                  ("openid" in p.get("scope", "").split(" "), "scope must contain 'openid'"),
                  *((bool(p.get(n)), f"{n} is required") for n in ("state", "nonce", "code_challenge")),
                  (PKCE_RE.fullmatch(p.get("code_challenge", "")), "malformed code_challenge"),
                  (p.get("code_challenge_method") == "S256", "code_challenge_method must be S256")]
        for ok, desc in checks:
            if not ok:
                raise OAuthError("invalid_request", desc)

    def issue_code(self, p, user):
        code, now = secrets.token_urlsafe(32), int(time.time())
        with self.lock:
            self.codes[code] = {"client_id": p["client_id"], "redirect_uri": p["redirect_uri"],
                                "code_challenge": p["code_challenge"], "nonce": p["nonce"],
                                "user": user, "auth_time": now, "expires": now + CODE_TTL}
            self.stats["codes_issued"] += 1
            self.stats["last_code_challenge_method"] = p["code_challenge_method"]
        return code

    def take_code(self, code):
        with self.lock:
            entry = self.codes.pop(code, None)
        if entry is None or entry["expires"] < time.time():
            raise OAuthError("invalid_grant", "code is invalid, expired or already used")
        return entry

    def id_token(self, entry):
        now, user = int(time.time()), entry["user"]
        claims = {"iss": self.issuer, "sub": user, "aud": self.args.client_id, "exp": now + self.args.ttl,
                  "iat": now, "nbf": now, "nonce": entry["nonce"], "auth_time": entry["auth_time"],
                  "name": user, "email": f"{user}@example.test",
                  self.args.groups_claim: list(self.users[user])}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


class Handler(BaseHTTPRequestHandler):
    server_version = "TestIdP/1.0"
    provider: Provider

    def send(self, status, body, ctype="application/json", headers=()):
        data = (json.dumps(body) if ctype == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, base, params):
        sep = "&" if "?" in base else "?"
        self.send_response(302)
        self.send_header("Location", base + sep + urlencode(params))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def error_page(self, status, message):
        self.send(status, f"<!doctype html><title>Test IdP — error</title><p>{html.escape(message)}</p>",
                  "text/html")

    def auth_error(self, p, error, desc):
        params = {"error": error, "error_description": desc}
        if p.get("state"):
            params["state"] = p["state"]
        self.redirect(self.provider.args.redirect_uri, params)

    @staticmethod
    def single(query):
        """Parses a urlencoded string, rejecting repeated parameters."""
        parsed = parse_qs(query, keep_blank_values=True)
        if repeated := [k for k, v in parsed.items() if len(v) > 1]:
            raise OAuthError("invalid_request", f"repeated parameter: {repeated[0]}")
        return {k: v[0] for k, v in parsed.items()}

    def form(self):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "body must be application/x-www-form-urlencoded")
        try:
            return self.single(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        except ValueError:
            raise OAuthError("invalid_request", "unreadable request body") from None

    def do_GET(self):
        url, p = urlsplit(self.path), self.provider
        if url.path == "/.well-known/openid-configuration":
            self.send(200, p.discovery())
        elif url.path == "/jwks.json":
            self.send(200, p.jwks)
        elif url.path == "/_stats":
            with p.lock:
                stats = dict(p.stats)
            self.send(200, stats)
        elif url.path == "/authorize":
            self.authorize(lambda: self.single(url.query), posted=False)
        else:
            self.send(404, {"error": "not_found"})

    def do_POST(self):
        path = urlsplit(self.path).path
        if path == "/authorize":
            self.authorize(self.form, posted=True)
        elif path == "/token":
            self.token()
        else:
            self.send(404, {"error": "not_found"})

    def authorize(self, read, posted):
        params = {}
        try:
            params = read()
            self.provider.validate_authorize(params)
        except OAuthError as e:
            if e.fatal or not params:
                return self.error_page(400, e.desc)
            return self.auth_error(params, e.error, e.desc)
        if not posted:
            return self.login_page(params)
        if "cancel" in params:
            return self.auth_error(params, "access_denied", "the user cancelled the sign-in")
        user = params.get("user")
        if user not in self.provider.users:
            return self.error_page(400, f"unknown user: {user!r}")
        code = self.provider.issue_code(params, user)
        self.redirect(params["redirect_uri"], {"code": code, "state": params["state"]})

    def login_page(self, params):
        esc = lambda s: html.escape(s, quote=True)
        hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in params.items())
        form = lambda name, value, label: (f'<form method="post" action="/authorize">{hidden}<button '
                                           f'type="submit" name="{name}" value="{esc(value)}">{esc(label)}'
                                           '</button></form>')
        forms = "".join(form("user", u, f"Sign in as {u}") for u in self.provider.users)
        forms += form("cancel", "1", "Cancel")
        body = (f'<!doctype html><html><head><meta charset="utf-8"><title>Test IdP — sign in</title>'
                f'</head><body><h1>Test IdP — sign in</h1>{forms}</body></html>')
        self.send(200, body, "text/html", headers=(("Cache-Control", "no-store"),))

    def client_auth(self, f):
        """Authenticates the client (basic, post or none); returns its client_id."""
        args, header = self.provider.args, self.headers.get("Authorization")
        secret = (args.client_secret or "").encode()
        if header is not None:
            scheme, _, cred = header.partition(" ")
            try:
                cid, sep, sec = base64.b64decode(cred, validate=True).decode().partition(":")
            except ValueError:
                sep = ""
            if scheme.lower() != "basic" or not sep or "client_secret" in f:
                raise OAuthError("invalid_request", "malformed or duplicated client authentication")
            cid, sec = unquote_plus(cid), unquote_plus(sec)
            if cid != args.client_id or not secret or not hmac.compare_digest(sec.encode(), secret):
                raise OAuthError("invalid_client", "client authentication failed", 401,
                                 (("WWW-Authenticate", 'Basic realm="test-idp"'),))
            if f.get("client_id", cid) != cid:
                raise OAuthError("invalid_request", "client_id does not match the credentials")
            return cid
        if f.get("client_id") != args.client_id:
            raise OAuthError("invalid_client", "unknown or missing client_id")
        if secret and not hmac.compare_digest(f.get("client_secret", "").encode(), secret):
            raise OAuthError("invalid_client", "client authentication failed")
        if not secret and "client_secret" in f:
            raise OAuthError("invalid_client", "this client has no secret")
        return args.client_id

    def token(self):
        no_store = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
        try:
            f = self.form()
            if f.get("grant_type", "authorization_code") != "authorization_code":
                raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
            client_id = self.client_auth(f)
            for name in ("grant_type", "code", "redirect_uri", "code_verifier"):
                if not f.get(name):
                    raise OAuthError("invalid_request", f"{name} is required")
            if not PKCE_RE.fullmatch(f["code_verifier"]):
                raise OAuthError("invalid_request", "code_verifier must be 43-128 unreserved characters")
            entry = self.provider.take_code(f["code"])
            if entry["client_id"] != client_id or entry["redirect_uri"] != f["redirect_uri"]:
                raise OAuthError("invalid_grant", "code was issued for another client or redirect_uri")
            if b64url(hashlib.sha256(f["code_verifier"].encode()).digest()) != entry["code_challenge"]:
                raise OAuthError("invalid_grant", "code_verifier does not match code_challenge")
        except OAuthError as e:
            body = {"error": e.error, "error_description": e.desc}
            return self.send(e.status, body, headers=no_store + tuple(e.headers))
        p = self.provider
        body = {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                "expires_in": p.args.ttl, "id_token": p.id_token(entry)}
        with p.lock:
            p.stats["tokens_issued"] += 1
        sys.stderr.write(f"token issued: user={entry['user']} client={client_id}\n")
        self.send(200, body, headers=no_store)


def main():
    ap = argparse.ArgumentParser(description="Minimal OIDC provider for tests")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--redirect-uri", required=True)
    ap.add_argument("--users", required=True, help='JSON, e.g. {"ada": ["sre"]}')
    ap.add_argument("--client-secret")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--groups-claim", default="groups")
    ap.add_argument("--ttl", type=int, default=300)
    provider = Provider(ap.parse_args())
    Handler.provider = provider
    server = ThreadingHTTPServer(("127.0.0.1", provider.args.port), Handler)
    server.daemon_threads = True
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    print(f"issuer {provider.issuer}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
