"""Verifies Standard Webhooks deliveries the way a receiver would, for the
end-to-end tests (tests/e2e/signatures.rs), independently of hookrelay's code.

Reads a JSON list on stdin, each item {"key", "headers", "body_b64"}; writes a JSON
list of booleans (whether the delivery verifies with that key) on stdout.

- `whsec_...` (v1, HMAC-SHA256): the Standard Webhooks reference library from PyPI,
  `standardwebhooks` (its `Webhook.verify`, timestamp tolerance included).
- `whpk_...` (v1a, ed25519): that library (1.3.0) verifies v1 only, so the
  signature is checked with the `cryptography` package's Ed25519 over
  `{webhook-id}.{webhook-timestamp}.{body}` as the specification says: any `v1a`
  signature of the space-separated `webhook-signature` that verifies, with the
  timestamp within the same five minutes the library allows.

Exits 2 naming the missing package when one is not installed: the test then fails
(`cargo xtask test` installs them; or `python3 -m pip install standardwebhooks
cryptography`).
"""

import base64
import json
import sys
import time

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
except ImportError as e:  # pragma: no cover - the test reports it
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(2)

TOLERANCE_SECONDS = 5 * 60


def verify_v1(key, headers, body):
    try:
        Webhook(key).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def verify_v1a(key, headers, body):
    public = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(key[len("whpk_"):], validate=True)
    )
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    for versioned in headers["webhook-signature"].split(" "):
        version, _, signature = versioned.partition(",")
        if version != "v1a":
            continue
        try:
            public.verify(base64.b64decode(signature), signed)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def main():
    results = []
    for case in json.load(sys.stdin):
        key = case["key"]
        headers = {k.lower(): v for k, v in case["headers"].items()}
        body = base64.b64decode(case["body_b64"])
        if key.startswith("whsec_"):
            results.append(verify_v1(key, headers, body))
        elif key.startswith("whpk_"):
            results.append(verify_v1a(key, headers, body))
        else:
            raise SystemExit(f"not a Standard Webhooks key: {key[:6]}...")
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
