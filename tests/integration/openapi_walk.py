#!/usr/bin/env python3
"""
openapi_walk.py - walk every operation of api/openapi.yaml against a running newtermsd.

The spec is the source of truth. The walker reads it (PyYAML) and, for each path + method:

  1. builds valid requests from the spec itself: parameter examples, every request-body example of
     every media type (plus a gzip'd copy where the operation takes Content-Encoding), and the
     credentials of each security alternative the operation lists;
  2. sends them and checks that the answer is a 2xx the operation lists, with the Content-Type and
     body the spec gives for it (required properties, types, enums, consts, formats, recursively;
     --shallow checks only the top-level required properties);
  3. checks the refusals the spec promises: 401 without credentials on every secured operation,
     403 with the read token on every changing /api/v1 operation, 405 plus an Allow header for a
     method the path does not list (checked once per path), and - only where the operation lists
     the status - 400 for a malformed body or a query value outside its schema, 404 for an unknown
     id, 409 for a duplicate id and 415 for an unsupported Content-Encoding.

Objects behind {id} paths are made first: a Firehose delivery (built from the spec's Firehose
example, with a fresh user name and eventID, so its (account, user) pair is a new term) yields an
alert, found with GET /api/v1/alerts?user=...; POST /api/v1/exceptions yields exception ids; GET
/api/v1/rules yields a rule id; GET /api/v1/outputs yields an output name (the server needs an
--outputs file for the /api/v1/outputs/{name}/... operations). Exceptions the walker created are deleted at the end.

Environment: NT_URL (default http://127.0.0.1:8080), NT_READ_TOKEN, NT_WRITE_TOKEN, NT_INGEST_TOKEN,
NT_FIREHOSE_KEY. Secrets are never printed.

Output: one line per operation (PASS/FAIL, or PLAN with --dry-run), the failed checks indented under
it (every check with --verbose), then a closing line `N passed, M failed` counting operations.
An operation for which no request could be built or sent fails as "not exercised".
Exit status: 0 if every operation passed, 1 otherwise, 2 on a usage or configuration error.

--dry-run sends nothing: it prints every planned request (setup included; ids that only a server
can give are taken from the spec's examples). It tests the YAML loading and request building.
"""

import argparse
import base64
import copy
import gzip
import http.client
import json
import os
import re
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlencode, urlsplit

try:
    import yaml
except ImportError:
    sys.stderr.write("openapi_walk: PyYAML is missing (Debian: apt-get install python3-yaml)\n")
    sys.exit(2)

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
UNLISTED_METHOD_CHOICES = ("DELETE", "PUT", "PATCH", "POST", "GET")  # for the 405 check

# Which environment variable holds the secret of each security scheme the spec declares.
SCHEME_SECRETS = {
    "firehoseAccessKey": "NT_FIREHOSE_KEY",
    "ingestBearer": "NT_INGEST_TOKEN",
    "ingestBasic": "NT_INGEST_TOKEN",
    "apiRead": "NT_READ_TOKEN",
    "apiWrite": "NT_WRITE_TOKEN",
}
READ_REQUIREMENT = {"apiRead": []}
BASIC_USER = "newtermsd"  # the service ignores the Basic user name

# Which object a path parameter names, per path template.
PATH_OBJECTS = {
    "/api/v1/alerts/{id}": "alert",
    "/api/v1/exceptions/{id}": "exception",
    "/api/v1/rules/{rule_id}": "rule",
    "/api/v1/outputs/{name}/failed": "output",
    "/api/v1/outputs/{name}/retry": "output",
}

# A body each operation must refuse with 400 (only used when the operation lists 400). Every
# /api/v1 operation with a body gets truncated JSON; ingestion routes are listed explicitly because
# what they refuse differs (a record that cannot be processed is rejected with 200, not 400).
TRUNCATED_JSON = b'{"status": '
MALFORMED_BODIES = {
    "ingestFirehose": b'{"requestId": "walk", "records": [',
    "ingestEventBridge": b'{"hello": "world"}',  # JSON, but no CloudTrail record in it
}

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
MAX_ITEMS_VALIDATED = 25  # array items validated per array, to bound the work on long lists
ALERT_POLL_TRIES = 10
ALERT_POLL_PAUSE_S = 0.3


class ConfigError(Exception):
    """The walker cannot run at all (bad spec, missing secret): exit 2."""


class NotExercisable(Exception):
    """No request can be built for an operation (a setup step it needs failed)."""


def now_ms():
    return int(time.time() * 1000)


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def base_media_type(content_type):
    return (content_type or "").split(";")[0].strip().lower()


def is_json_media(media_type):
    base = base_media_type(media_type)
    return base == "application/json" or base.endswith("+json")


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------

@dataclass
class Operation:
    path: str
    method: str  # upper case
    op_id: str
    params: list  # resolved Parameter objects, path-level merged with operation-level
    body: dict  # resolved Request Body object, or None
    responses: dict  # status key -> resolved Response object
    security: list  # list of requirement dicts; [] = none; a {} member = optional

    @property
    def label(self):
        return f"{self.method} {self.path} ({self.op_id})"

    def response(self, status):
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in self.responses:
                return self.responses[key]
        return None

    def lists(self, status):
        return self.response(status) is not None

    def secured(self):
        return bool(self.security) and all(self.security)

    def changes(self):
        return self.method not in ("GET", "HEAD")

    def params_in(self, where):
        return [p for p in self.params if p.get("in") == where]

    def takes_gzip(self):
        for p in self.params_in("header"):
            if p["name"].lower() == "content-encoding":
                return "gzip" in (p.get("schema") or {}).get("enum", ["gzip"])
        return False


class Spec:
    def __init__(self, doc):
        if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
            raise ConfigError("the spec has no paths object")
        if not str(doc.get("openapi", "")).startswith("3."):
            raise ConfigError(f"not an OpenAPI 3 document (openapi: {doc.get('openapi')!r})")
        self.doc = doc
        self.ops = self._operations()

    @classmethod
    def load(cls, path):
        try:
            with open(path, encoding="utf-8") as f:
                return cls(yaml.safe_load(f))
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from e

    def pointer(self, ref):
        if not ref.startswith("#/"):
            raise ConfigError(f"only local $refs are supported, not {ref!r}")
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unresolved $ref {ref!r}")
            node = node[part]
        return node

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
            seen += 1
            if seen > 50:
                raise ConfigError("$ref cycle")
        return node

    def scheme(self, name):
        schemes = self.doc.get("components", {}).get("securitySchemes", {})
        if name not in schemes:
            raise ConfigError(f"security scheme {name!r} is used but not declared")
        return self.resolve(schemes[name])

    def op(self, op_id):
        for op in self.ops:
            if op.op_id == op_id:
                return op
        return None

    def _operations(self):
        ops = []
        global_security = self.doc.get("security", [])
        for path, item in self.doc["paths"].items():
            item = self.resolve(item)
            shared = [self.resolve(p) for p in item.get("parameters", [])]
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                raw = item[method]
                own = [self.resolve(p) for p in raw.get("parameters", [])]
                names = {(p["name"], p["in"]) for p in own}
                params = [p for p in shared if (p["name"], p["in"]) not in names] + own
                body = self.resolve(raw["requestBody"]) if "requestBody" in raw else None
                responses = {str(k): self.resolve(v) for k, v in raw.get("responses", {}).items()}
                ops.append(Operation(path=path, method=method.upper(),
                                     op_id=raw.get("operationId", f"{method} {path}"),
                                     params=params, body=body, responses=responses,
                                     security=raw.get("security", global_security)))
        if not ops:
            raise ConfigError("the spec describes no operation")
        return ops

    def examples(self, media):
        """Named example values of a Media Type object, in spec order."""
        out = []
        for name, ex in (media.get("examples") or {}).items():
            ex = self.resolve(ex)
            if "value" in ex:
                out.append((name, ex["value"]))
        if not out and "example" in media:
            out.append(("example", media["example"]))
        if not out:
            schema = self.resolve(media.get("schema") or {})
            for i, value in enumerate(schema.get("examples") or []):
                out.append((f"schema example {i}", value))
        return out


# --------------------------------------------------------------------------------------------
# Schema checks (the subset of JSON Schema the spec uses)
# --------------------------------------------------------------------------------------------

def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def type_matches(wanted, v):
    actual = json_type(v)
    return actual == wanted or (wanted == "number" and actual == "integer")


def same_value(a, b):
    return json_type(a) == json_type(b) and a == b


def validate(spec, schema, value, where="body", deep=True):
    """Problems found in value against schema (empty list: valid). Not deep: top-level required only."""
    problems = []
    schema = spec.resolve(schema)
    if not isinstance(schema, dict):
        return problems
    for sub in schema.get("allOf", []):
        problems += validate(spec, sub, value, where, deep)
    if deep:
        for key in ("oneOf", "anyOf"):
            if key in schema:
                results = [validate(spec, s, value, where, deep) for s in schema[key]]
                matching = sum(1 for r in results if not r)
                if matching == 0:
                    closest = min(results, key=len)
                    problems.append(f"{where}: matches none of the {len(results)} {key} alternatives "
                                    f"(closest: {closest[0]})")
        wanted = schema.get("type")
        if wanted is not None:
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if not any(type_matches(t, value) for t in wanted):
                problems.append(f"{where}: {json_type(value)} where the spec wants {' or '.join(wanted)}")
                return problems
        if "const" in schema and not same_value(value, schema["const"]):
            problems.append(f"{where}: {value!r} is not the constant {schema['const']!r}")
        if "enum" in schema and not any(same_value(value, e) for e in schema["enum"]):
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: required property {name!r} is missing")
        if deep:
            for name, sub in (schema.get("properties") or {}).items():
                if name in value:
                    problems += validate(spec, sub, value[name], f"{where}.{name}", deep)
    elif not deep:
        pass
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: {len(value)} items, fewer than {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: {len(value)} items, more than {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value[:MAX_ITEMS_VALIDATED]):
                problems += validate(spec, schema["items"], item, f"{where}[{i}]", deep)
    elif isinstance(value, str):
        if schema.get("format") == "date-time" and not DATE_TIME.match(value):
            problems.append(f"{where}: {value!r} is not an RFC 3339 date-time")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: shorter than {schema['minLength']} characters")
    elif json_type(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    return problems


def invalid_query_values(spec, param):
    """Values outside a query parameter's schema, each with why it is invalid."""
    schema = spec.resolve(param.get("schema") or {})
    out = []
    if schema.get("format") == "date-time":
        out.append(("yesterday", "not an RFC 3339 date-time"))
    if schema.get("type") == "integer":
        if "minimum" in schema:
            out.append((str(schema["minimum"] - 1), f"below the minimum {schema['minimum']}"))
        if "maximum" in schema:
            out.append((str(schema["maximum"] + 1), f"above the maximum {schema['maximum']}"))
    if "enum" in schema:
        out.append(("walk-no-such-value", f"not one of {schema['enum']}"))
    return out


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str  # already filled in and quoted
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    body: bytes = None
    auth: str = "none"  # names of the security schemes used, for printing (never the secret)
    what: str = ""  # which example / variant the body is

    def target(self):
        return self.path + ("?" + urlencode(self.query) if self.query else "")

    def describe(self):
        shown = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "x-amz-firehose-access-key")}
        text = f"{self.method} {self.target()}  auth={self.auth}"
        if shown:
            text += "  " + " ".join(f"{k}: {v}" for k, v in shown.items())
        if self.body is not None:
            if self.headers.get("Content-Encoding") == "gzip":
                preview = f"<gzip, {len(self.body)} bytes>"
            else:
                preview = self.body[:100].decode("utf-8", "replace").replace("\n", "\\n")
                preview += "..." if len(self.body) > 100 else ""
            text += f"  body[{self.what or 'raw'}, {len(self.body)} B]: {preview}"
        return text


@dataclass
class Response:
    status: int  # 0 = no answer (see error)
    headers: dict  # lower-case names
    body: bytes
    error: str = ""

    def content_type(self):
        return self.headers.get("content-type", "")


class Http:
    def __init__(self, base_url, timeout, dry_run):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"NT_URL must be an http(s) URL, not {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.dry_run = dry_run

    def send(self, req):
        """The server's answer, or None in a dry run. Never raises for network errors."""
        if self.dry_run:
            return None
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        headers = dict(req.headers)
        if req.body is not None:
            headers["Content-Length"] = str(len(req.body))
        try:
            conn.request(req.method, self.prefix + req.target(), body=req.body, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            return Response(0, {}, b"", error=f"{type(e).__name__}: {e}")
        finally:
            conn.close()


class Credentials:
    def __init__(self, spec, env, dry_run):
        self.spec = spec
        self.secrets = {}
        missing = set()
        used = {name for op in spec.ops for req in op.security for name in req}
        for name in sorted(used):
            scheme = spec.scheme(name)
            if name not in SCHEME_SECRETS:
                raise ConfigError(f"the walker does not know which secret belongs to security scheme {name!r}; "
                                  f"add it to SCHEME_SECRETS")
            if scheme.get("type") not in ("apiKey", "http"):
                raise ConfigError(f"security scheme {name!r} has unsupported type {scheme.get('type')!r}")
            var = SCHEME_SECRETS[name]
            value = env.get(var)
            if not value:
                if not dry_run:
                    missing.add(var)
                value = f"<{var}>"
            self.secrets[name] = value.split(",")[0]  # the service accepts comma-separated rotation lists
        if missing:
            raise ConfigError("missing environment variable(s): " + ", ".join(sorted(missing)))

    def headers(self, requirement, wrong=False):
        """Headers that satisfy one security requirement (a dict of scheme names), or with wrong
        secrets in the same places."""
        out = {}
        for name in requirement:
            scheme = self.spec.scheme(name)
            secret = "walk-wrong-" + uuid.uuid4().hex if wrong else self.secrets[name]
            if scheme["type"] == "apiKey":
                if scheme.get("in") != "header":
                    raise ConfigError(f"security scheme {name!r}: only header API keys are supported")
                out[scheme["name"]] = secret
            elif scheme.get("scheme", "").lower() == "bearer":
                out["Authorization"] = f"Bearer {secret}"
            elif scheme.get("scheme", "").lower() == "basic":
                token = base64.b64encode(f"{BASIC_USER}:{secret}".encode()).decode()
                out["Authorization"] = f"Basic {token}"
            else:
                raise ConfigError(f"security scheme {name!r}: unsupported http scheme {scheme.get('scheme')!r}")
        return out


def auth_label(requirement):
    return "+".join(requirement) if requirement else "none"


# --------------------------------------------------------------------------------------------
# One operation's checks
# --------------------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    ok: bool  # None in a dry run (planned)
    detail: str


class OperationRun:
    """Sends one operation's requests and records a Check for each."""

    def __init__(self, walk, op):
        self.walk = walk
        self.op = op
        self.checks = []
        self.sent = 0
        self.not_exercised = None  # reason, when nothing could be built

    def expect(self, name, req, expected, after=None):
        """Send req; expected is a status or "success" (a 2xx the operation lists). after(resp, body)
        returns extra problems. Returns (response, parsed JSON body or None)."""
        resp = self.walk.http.send(req)
        self.sent += 1
        if resp is None:
            self.checks.append(Check(name, None, req.describe()))
            return None, None
        problems = []
        body = None
        if resp.status == 0:
            problems.append(f"no answer: {resp.error}")
        else:
            if expected == "success":
                if not (200 <= resp.status < 300):
                    problems.append(f"status {resp.status}, expected a 2xx")
                elif not self.op.lists(resp.status):
                    problems.append(f"status {resp.status} is not listed for this operation")
            elif resp.status != expected:
                problems.append(f"status {resp.status}, expected {expected}")
            elif expected != 405 and not self.op.lists(expected):
                problems.append(f"got {expected} as expected, but the spec does not list it")
            if not problems and expected != 405:
                body, more = self.walk.check_body(self.op, resp)
                problems += more
            if not problems and after is not None:
                if body is not None and not isinstance(body, dict):
                    problems.append(f"body is a JSON {json_type(body)}, not an object")
                else:
                    problems += after(resp, body or {})
        if problems:
            snippet = resp.body[:300].decode("utf-8", "replace").replace("\n", "\\n")
            detail = "; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else "")
            detail += f"  [{req.method} {req.target()} auth={req.auth}]"
            if snippet:
                detail += f"  body: {snippet}"
            self.checks.append(Check(name, False, detail))
        else:
            self.checks.append(Check(name, True, f"{resp.status}"))
        return resp, body

    def fail(self, name, detail):
        self.checks.append(Check(name, False, detail))


# --------------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------------

class Walk:
    def __init__(self, spec, http_client, creds, deep):
        self.spec = spec
        self.http = http_client
        self.creds = creds
        self.deep = deep
        self.dry_run = http_client.dry_run
        self.run_id = uuid.uuid4().hex[:10]
        self.objects = {}  # kind -> id made in setup
        self.missing = {}  # kind -> why setup could not make it
        self.exceptions_to_delete = []
        self.exception_counter = 0
        self.first_op_of_path = {}
        for op in spec.ops:
            self.first_op_of_path.setdefault(op.path, op)

    # ---- requests ------------------------------------------------------------------------

    def fill_path(self, op, values):
        path = op.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        if "{" in path:
            raise NotExercisable(f"no value for a path parameter in {op.path}")
        return path

    def request(self, op, requirement, values, query=None, variant=None, extra_headers=None):
        headers = {}
        for p in op.params_in("header"):
            if p["name"].lower() != "content-encoding" and "example" in p:
                headers[p["name"]] = str(p["example"])
        what, content_type, body, variant_headers = variant or ("", None, None, {})
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(variant_headers)
        headers.update(self.creds.headers(requirement or {}))
        headers.update(extra_headers or {})
        return Request(op.method, self.fill_path(op, values), dict(query or {}), headers, body,
                       auth_label(requirement or {}), what)

    def example_query(self, op):
        """Every query parameter that has an example (cursor is opaque: only from a response)."""
        return {p["name"]: str(p["example"]) for p in op.params_in("query")
                if "example" in p and p["name"] != "cursor"}

    def body_variants(self, op, values):
        """(what, content type, bytes, headers) per request-body example, plus a gzip'd copy of the
        first JSON example when the operation takes Content-Encoding. Every call makes fresh ids."""
        if op.body is None:
            return [("", None, None, {})]
        raw = [(name, media_type, value)
               for media_type, media in (op.body.get("content") or {}).items()
               for name, value in self.spec.examples(media)]
        if not raw:
            raise NotExercisable("the request body has no example to send")
        out = [self.build_body(op, values, *r) for r in raw]
        if op.takes_gzip():
            name, media_type, value = next((r for r in raw if is_json_media(r[1])), raw[0])
            out.append(self.build_body(op, values, f"{name}, gzip", media_type, value, compress=True))
        return out

    def build_body(self, op, values, name, media_type, value, compress=False):
        value = copy.deepcopy(value)
        fixer = BODY_FIXERS.get(op.op_id)
        headers = fixer(self, value, values) if fixer and isinstance(value, dict) else {}
        data = serialize(media_type, value)
        if compress:
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        return (name, media_type, data, headers)

    def new_exception_id(self, role):
        self.exception_counter += 1
        ident = f"walk-{self.run_id}-{role}-{self.exception_counter}"
        self.exceptions_to_delete.append(ident)
        return ident

    def check_body(self, op, resp):
        """Parse and validate a response body against the spec. Returns (parsed or None, problems)."""
        spec_resp = op.response(resp.status)
        content = (spec_resp or {}).get("content") or {}
        if not content:
            if resp.status == 204 and resp.body:
                return None, [f"204 with a {len(resp.body)}-byte body"]
            return None, []
        got = base_media_type(resp.content_type())
        media = next((m for k, m in content.items() if base_media_type(k) == got), None)
        if media is None:
            return None, [f"Content-Type {resp.content_type()!r} is not one of {list(content)}"]
        if not is_json_media(got):
            return None, []
        try:
            body = json.loads(resp.body)
        except ValueError as e:
            return None, [f"body is not JSON ({e})"]
        return body, validate(self.spec, media.get("schema") or {}, body, "body", self.deep)

    # ---- setup ---------------------------------------------------------------------------

    def setup(self, out):
        """Make the objects that {id} paths need. Failures are remembered, not fatal."""
        self.setup_rule(out)
        self.setup_alert(out)
        self.setup_exception(out)
        self.setup_output(out)

    def example_id(self, kind):
        path = next(p for p, k in PATH_OBJECTS.items() if k == kind)
        op = next((o for o in self.spec.ops if o.path == path), None)
        for p in (op.params_in("path") if op else []):
            if "example" in p:
                return str(p["example"])
        return f"walk-example-{kind}"

    def setup_send(self, out, what, req):
        resp = self.http.send(req)
        if resp is None:
            out(f"SETUP {what}: {req.describe()}")
        return resp

    def setup_rule(self, out):
        op = self.spec.op("listRules")
        if op is None:
            self.missing["rule"] = "the spec has no listRules operation"
            return
        resp = self.setup_send(out, "rule", self.request(op, READ_REQUIREMENT, {}))
        if resp is None:
            self.objects["rule"] = self.example_id("rule")
            return
        rules = [r for r in json_list(resp, "rules") if isinstance(r, dict) and r.get("rule_id")]
        if resp.status != 200 or not rules:
            self.missing["rule"] = f"GET /api/v1/rules gave {describe_answer(resp)}"
            return
        self.objects["rule"] = rules[0]["rule_id"]
        learning = [f"{r['rule_id']} until {r['learning_until']}" for r in rules if r.get("learning_until")]
        note = f"; learning: {', '.join(learning)}" if learning else ""
        out(f"SETUP rule: {len(rules)} loaded, using {self.objects['rule']}{note}")

    def setup_output(self, out):
        """An output name for /api/v1/outputs/{name}/...: the first one the server lists (the
        server must run with an --outputs file for those operations to be exercised)."""
        op = self.spec.op("listOutputs")
        if op is None:
            self.missing["output"] = "the spec has no listOutputs operation"
            return
        resp = self.setup_send(out, "output", self.request(op, READ_REQUIREMENT, {}))
        if resp is None:
            self.objects["output"] = self.example_id("output")
            return
        names = [o["name"] for o in json_list(resp, "outputs") if isinstance(o, dict) and o.get("name")]
        if resp.status != 200 or not names:
            self.missing["output"] = (f"GET /api/v1/outputs gave {describe_answer(resp)} (start the server "
                                      f"with --outputs)")
            return
        self.objects["output"] = names[0]
        out(f"SETUP output: {len(names)} configured, using {names[0]}")

    def setup_alert(self, out):
        fh, lst = self.spec.op("ingestFirehose"), self.spec.op("listAlerts")
        if fh is None or lst is None:
            self.missing["alert"] = "the spec lacks ingestFirehose or listAlerts"
            return
        try:
            value, user = self.candidate_delivery(fh)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            self.missing["alert"] = f"cannot build a new-term delivery from the Firehose example: {e}"
            return
        variant = ("new-term candidate", "application/json", serialize("application/json", value),
                   {"X-Amz-Firehose-Request-Id": value["requestId"]})
        requirement = fh.security[0] if fh.security else {}
        resp = self.setup_send(out, "alert", self.request(fh, requirement, {}, variant=variant))
        find = self.request(lst, READ_REQUIREMENT, {}, query={"user": user, "limit": "10"})
        if resp is None:
            self.setup_send(out, "alert", find)
            self.objects["alert"] = self.example_id("alert")
            return
        if resp.status != 200:
            self.missing["alert"] = f"the new-term delivery for user {user} gave {describe_answer(resp)}"
            return
        for _ in range(ALERT_POLL_TRIES):
            alert_id = self.find_alert(find, user)
            if alert_id:
                self.objects["alert"] = alert_id
                out(f"SETUP alert: {alert_id} (user {user})")
                return
            time.sleep(ALERT_POLL_PAUSE_S)
        self.missing["alert"] = (f"no alert for the new-term delivery of user {user} (is the rule in a learning "
                                 f"period, or not the shipped rule 444c8fad-...? see GET /api/v1/rules)")

    def find_alert(self, find, user):
        resp = self.http.send(find)
        alerts = [a for a in json_list(resp, "alerts") if isinstance(a, dict) and a.get("id")]
        if resp.status == 200 and alerts:
            return alerts[0]["id"]
        # the user filter may be what is broken: look through the newest alerts as well
        wide = Request("GET", find.path, {"limit": "100"}, find.headers, auth=find.auth)
        for alert in json_list(self.http.send(wide), "alerts"):
            fields = alert.get("fields") if isinstance(alert, dict) else None
            event = alert.get("event") if isinstance(alert, dict) else None
            identity = event.get("userIdentity") if isinstance(event, dict) else None
            names = ((fields or {}).get("user.name") if isinstance(fields, dict) else None,
                     identity.get("userName") if isinstance(identity, dict) else None)
            if user in names:
                return alert.get("id")
        return None

    def candidate_delivery(self, fh):
        """The spec's Firehose example with its first record turned into a never-seen (account, user)."""
        media = fh.body["content"]["application/json"]
        value = copy.deepcopy(self.spec.examples(media)[0][1])
        outer = json.loads(base64.b64decode(value["records"][0]["data"], validate=True))
        record = outer["detail"] if "detail" in outer else outer
        user = f"walk-{self.run_id}"
        identity = record.setdefault("userIdentity", {})
        account = identity.get("accountId") or record.get("recipientAccountId") or "111122223333"
        identity.update({"type": "IAMUser", "userName": user, "arn": f"arn:aws:iam::{account}:user/{user}",
                         "principalId": "AIDA" + self.run_id.upper(), "accountId": account})
        record.pop("errorCode", None)
        record.pop("errorMessage", None)
        record.update({"eventID": str(uuid.uuid4()), "requestID": str(uuid.uuid4()), "eventTime": now_rfc3339()})
        if "detail" in outer:
            outer.update({"id": str(uuid.uuid4()), "time": record["eventTime"]})
        data = json.dumps(outer, separators=(",", ":")).encode()
        value["records"] = [{"data": base64.b64encode(data).decode()}]
        fix_firehose(self, value, {})
        return value, user

    def setup_exception(self, out):
        op = self.spec.op("createException")
        if op is None:
            self.missing["exception"] = "the spec has no createException operation"
            return
        try:
            variant = self.body_variants(op, {})[0]
        except NotExercisable as e:
            self.missing["exception"] = str(e)
            return
        resp = self.setup_send(out, "exception", self.request(op, {"apiWrite": []}, {}, variant=variant))
        if resp is None:
            self.objects["exception"] = self.example_id("exception")
            return
        made = json_field(resp, "id")
        if resp.status != 201 or not made:
            self.missing["exception"] = f"POST /api/v1/exceptions gave {describe_answer(resp)}"
            return
        if made not in self.exceptions_to_delete:
            self.exceptions_to_delete.append(made)
        self.objects["exception"] = made
        out(f"SETUP exception: {made}")

    def object_id(self, kind, op, purpose):
        """The id an operation's path needs; a DELETE gets an object of its own."""
        if kind in self.missing:
            raise NotExercisable(f"setup could not make a{'n' if kind[0] in 'aeiou' else ''} {kind}: "
                                 f"{self.missing[kind]}")
        if kind == "exception" and op.method == "DELETE" and purpose == "success":
            return self.fresh_exception()
        return self.objects[kind]

    def fresh_exception(self):
        create = self.spec.op("createException")
        variant = self.body_variants(create, {})[0]
        resp = self.http.send(self.request(create, {"apiWrite": []}, {}, variant=variant))
        if resp is None:
            return self.example_id("exception")
        made = json_field(resp, "id")
        if resp.status != 201 or not made:
            raise NotExercisable(f"could not create an exception to delete: {describe_answer(resp)}")
        return made

    def path_values(self, op, purpose="success"):
        values = {}
        for p in op.params_in("path"):
            kind = PATH_OBJECTS.get(op.path)
            if kind is None:
                raise NotExercisable(f"the walker does not know what {{{p['name']}}} in {op.path} names; "
                                     f"add it to PATH_OBJECTS")
            values[p["name"]] = self.object_id(kind, op, purpose) if purpose != "unknown" else unknown_id(kind, self)
        return values

    # ---- one operation -------------------------------------------------------------------

    def walk_operation(self, op):
        run = OperationRun(self, op)
        try:
            self.plan_checks(run)
        except NotExercisable as e:
            run.not_exercised = str(e)
        return run

    def plan_checks(self, run):
        op = run.op
        values = self.path_values(op)
        least = op.security[0] if op.security else {}
        first = self.body_variants(op, values)[0]
        query = self.example_query(op)

        # refusals first, so that a DELETE still has its object
        if self.first_op_of_path[op.path] is op:
            self.check_unlisted_method(run, values, least)
        if op.secured():
            if not op.lists(401):
                run.fail("401 without credentials", "the operation is secured but the spec does not list 401")
            else:
                run.expect("401 without credentials", self.request(op, {}, values, query, first), 401)
                req = self.request(op, least, values, query, first, self.creds.headers(least, wrong=True))
                req.auth += " (wrong secret)"
                run.expect("401 with a wrong secret", req, 401)
        if op.path.startswith("/api/v1/") and op.changes():
            run.expect("403 with the read token", self.request(op, READ_REQUIREMENT, values, query, first), 403)
        if op.params_in("path") and op.lists(404):
            unknown = self.path_values(op, "unknown")
            req = self.request(op, least, unknown, query, self.body_variants(op, unknown)[0])
            run.expect("404 for an unknown id", req, 404)
        if op.lists(400):
            self.check_bad_requests(run, values, least, query, first)
        if op.takes_gzip() and op.lists(415):
            req = self.request(op, least, values, query, first, {"Content-Encoding": "br"})
            run.expect("415 for Content-Encoding br", req, 415)

        # every body example with the first security alternative, then every other alternative
        sends = [(least, v) for v in self.body_variants(op, values)]
        sends += [(r, None) for r in op.security[1:]]
        for requirement, variant in sends:
            vals = self.path_values(op) if op.method == "DELETE" else values  # a DELETE needs a fresh object
            req = self.request(op, requirement, vals, query, variant or self.body_variants(op, vals)[0])
            name = f"success with {req.what or 'no body'} as {req.auth}"
            run.expect(name, req, "success", self.after_check(op, req))
        extra = EXTRA_CHECKS.get(op.op_id)
        if extra:
            extra(self, run, values, least)

    def after_check(self, op, req):
        check = AFTER_CHECKS.get(op.op_id)
        return (lambda resp, body: check(self, req, resp, body)) if check else None

    def check_unlisted_method(self, run, values, least):
        listed = sorted(o.method for o in self.spec.ops if o.path == run.op.path)
        method = next(m for m in UNLISTED_METHOD_CHOICES if m not in listed)
        # the strongest credential the path takes, so that only the method can be the reason to refuse
        strongest = next((r for r in run.op.security if "apiWrite" in r), least)
        req = self.request(run.op, strongest, values)
        req.method = method

        def allow_header(resp, _body):
            allow = {m.strip().upper() for m in resp.headers.get("allow", "").split(",") if m.strip()}
            lacking = [m for m in listed if m not in allow]
            return [f"Allow header {resp.headers.get('allow')!r} lacks {', '.join(lacking)}"] if lacking else []
        run.expect(f"405 for {method} (a method {run.op.path} does not list)", req, 405, allow_header)

    def check_bad_requests(self, run, values, least, query, first):
        op = run.op
        malformed = MALFORMED_BODIES.get(op.op_id)
        if malformed is None and op.body is not None and op.path.startswith("/api/v1/"):
            malformed = TRUNCATED_JSON
        if malformed is not None:
            variant = ("malformed", "application/json", malformed, {})
            run.expect("400 for a malformed body", self.request(op, least, values, query, variant), 400)
        for p in op.params_in("query"):
            for bad, why in invalid_query_values(self.spec, p):
                req = self.request(op, least, values, {p["name"]: bad}, first)
                run.expect(f"400 for {p['name']}={bad} ({why})", req, 400)

    def cleanup(self, out):
        op = self.spec.op("deleteException")
        if op is None or self.dry_run:
            return
        for ident in self.exceptions_to_delete:
            resp = self.http.send(self.request(op, {"apiWrite": []}, {"id": ident}))
            if resp.status not in (204, 404):
                out(f"CLEANUP could not delete exception {ident}: {describe_answer(resp)}")


# --------------------------------------------------------------------------------------------
# Per-operation knowledge: how to make an example body valid for this run, and what else to check
# --------------------------------------------------------------------------------------------

def fix_firehose(walk, value, _values):
    """A fresh requestId per delivery (the service may deduplicate retries of one id)."""
    rid = str(uuid.uuid4())
    value["requestId"] = rid
    value["timestamp"] = now_ms()
    return {"X-Amz-Firehose-Request-Id": rid}


def fix_create_exception(walk, value, _values):
    if "id" in value:
        value["id"] = walk.new_exception_id("made")
    return {}


def fix_replace_exception(walk, value, values):
    if "id" in value and "id" in values:
        value["id"] = values["id"]
    return {}


def fix_bulk_status(walk, value, _values):
    alert = walk.objects.get("alert")
    if alert:
        # All or nothing: an example id that names no alert would make the whole request a 404.
        value["ids"] = [alert]
    return {}


BODY_FIXERS = {
    "ingestFirehose": fix_firehose,
    "createException": fix_create_exception,
    "replaceException": fix_replace_exception,
    "updateAlertsStatus": fix_bulk_status,
}


def sent_json(req):
    try:
        return json.loads(gzip.decompress(req.body) if req.headers.get("Content-Encoding") == "gzip" else req.body)
    except (ValueError, OSError, TypeError):
        return None


def after_firehose(walk, req, resp, body):
    sent = sent_json(req) or {}
    if body.get("requestId") != sent.get("requestId"):
        return [f"requestId {body.get('requestId')!r} is not the request's {sent.get('requestId')!r}"]
    return []


def after_same_id(key):
    """The body's key names the object of the path's last segment."""
    def check(walk, req, resp, body):
        wanted = unquote(req.path.rsplit("/", 1)[-1])
        return [] if body.get(key) == wanted else [f"{key} {body.get(key)!r} is not the path's {wanted!r}"]
    return check


def after_update_status(walk, req, resp, body):
    sent = sent_json(req) or {}
    problems = []
    if body.get("status") != sent.get("status"):
        problems.append(f"status is {body.get('status')!r} after setting {sent.get('status')!r}")
    if body.get("status_reason") != sent.get("reason"):
        problems.append(f"status_reason is {body.get('status_reason')!r} after sending reason {sent.get('reason')!r}")
    return problems


def after_bulk_status(walk, req, resp, body):
    alert = walk.objects.get("alert")
    if alert is None:
        return []  # setup made no alert: every id is unknown, nothing more to assert
    if alert in (body.get("not_found") or []):
        return [f"the existing alert {alert} is reported not_found"]
    return [] if body.get("updated", 0) >= 1 else ["updated is 0 although the request names an existing alert"]


def after_create_exception(walk, req, resp, body):
    made = body.get("id")
    if made and made not in walk.exceptions_to_delete:
        walk.exceptions_to_delete.append(made)
    sent = sent_json(req) or {}
    if "id" in sent and made != sent["id"]:
        return [f"id {made!r} is not the client id {sent['id']!r}"]
    return []


def after_delete_exception(walk, req, resp, body):
    get = walk.spec.op("getException")
    if get is None:
        return []
    again = walk.http.send(Request("GET", req.path, {}, walk.creds.headers(READ_REQUIREMENT), auth="apiRead"))
    return [] if again.status == 404 else [f"GET after DELETE gave {again.status}, expected 404"]


AFTER_CHECKS = {
    "ingestFirehose": after_firehose,
    "getAlert": after_same_id("id"),
    "updateAlertStatus": after_update_status,
    "updateAlertsStatus": after_bulk_status,
    "createException": after_create_exception,
    "getException": after_same_id("id"),
    "replaceException": after_same_id("id"),
    "deleteException": after_delete_exception,
    "getRule": after_same_id("rule_id"),
}


def extra_list_alerts(walk, run, values, least):
    """Follow next_cursor from a one-alert page: the cursor must give the next page."""
    resp, body = run.expect("success for limit=1", walk.request(run.op, least, values, {"limit": "1"}), "success")
    cursor = (body or {}).get("next_cursor")
    if resp is None:
        cursor = "<next_cursor of the previous page>"
    if cursor:
        def differs(r, b):
            first = [a.get("id") for a in (body or {}).get("alerts", [])]
            second = [a.get("id") for a in (b or {}).get("alerts", [])]
            return [f"the next page repeats {second}"] if second and second == first else []
        run.expect("success for the next_cursor page",
                   walk.request(run.op, least, values, {"limit": "1", "cursor": cursor}), "success", differs)


def extra_create_exception(walk, run, values, least):
    """Creating an item whose id exists is 409."""
    existing = walk.objects.get("exception")
    if not existing or not run.op.lists(409):
        return
    name, media_type, data, headers = walk.body_variants(run.op, values)[0]
    value = json.loads(data)
    value["id"] = existing
    variant = (f"{name}, existing id", media_type, serialize(media_type, value), headers)
    run.expect("409 for an existing id", walk.request(run.op, least, values, variant=variant), 409)


EXTRA_CHECKS = {
    "listAlerts": extra_list_alerts,
    "createException": extra_create_exception,
}


def unknown_id(kind, walk):
    if kind == "output":
        return f"walk-{walk.run_id}-missing".lower()
    return "0" * 32 if kind == "alert" else f"walk-{walk.run_id}-missing-{kind}"


def serialize(media_type, value):
    if is_json_media(media_type):
        return json.dumps(value).encode()
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):  # NDJSON given as a list of objects
        return "".join(json.dumps(v) + "\n" for v in value).encode()
    return json.dumps(value).encode()


def json_field(resp, key):
    """resp's JSON body's key, or None (no answer, not JSON, not an object)."""
    if resp is None or resp.status == 0:
        return None
    try:
        body = json.loads(resp.body)
    except ValueError:
        return None
    return body.get(key) if isinstance(body, dict) else None


def json_list(resp, key):
    """resp's JSON body's key if it is a list, else []."""
    value = json_field(resp, key)
    return value if isinstance(value, list) else []


def describe_answer(resp):
    if resp is None:
        return "nothing (dry run)"
    if resp.status == 0:
        return f"no answer ({resp.error})"
    return f"{resp.status} {resp.body[:200].decode('utf-8', 'replace')}"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def default_spec_path():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "api", "openapi.yaml"))


def main(argv):
    ap = argparse.ArgumentParser(description="Exercise every operation of the OpenAPI spec against a running newtermsd.")
    ap.add_argument("--spec", default=default_spec_path(), help="path of openapi.yaml (default: api/openapi.yaml)")
    ap.add_argument("--dry-run", action="store_true", help="print the planned requests, send nothing")
    ap.add_argument("--shallow", action="store_true", help="check only top-level required properties of bodies")
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds per request (default 15)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every check, not only failed ones")
    args = ap.parse_args(argv)

    def out(line):
        print(line, flush=True)

    try:
        spec = Spec.load(args.spec)
        client = Http(os.environ.get("NT_URL", "http://127.0.0.1:8080"), args.timeout, args.dry_run)
        creds = Credentials(spec, os.environ, args.dry_run)
    except ConfigError as e:
        sys.stderr.write(f"openapi_walk: {e}\n")
        return 2

    walk = Walk(spec, client, creds, deep=not args.shallow)
    if args.dry_run:
        out(f"DRY RUN: {len(spec.ops)} operations in {args.spec}; nothing is sent")
    passed = failed = 0
    try:
        walk.setup(out)
        for op in spec.ops:
            run = walk.walk_operation(op)
            bad = [c for c in run.checks if c.ok is False]
            if run.not_exercised or run.sent == 0:
                failed += 1
                why = run.not_exercised or "no request was built"
                out(f"FAIL  {op.label}: not exercised: {why}")
            elif bad:
                failed += 1
                out(f"FAIL  {op.label}: {len(bad)} of {len(run.checks)} checks failed")
            else:
                passed += 1
                out(f"{'PLAN' if args.dry_run else 'PASS'}  {op.label}: {len(run.checks)} "
                    f"{'requests' if args.dry_run else 'checks'}")
            for c in run.checks:
                if c.ok is False or args.verbose or args.dry_run:
                    mark = {True: "ok  ", False: "FAIL", None: "plan"}[c.ok]
                    out(f"        {mark} {c.name}: {c.detail}")
    except ConfigError as e:
        sys.stderr.write(f"openapi_walk: {e}\n")
        return 2
    finally:
        walk.cleanup(out)
    out(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
