//! Signing schemes on the real pipeline: `hmac-sha256` (Standard Webhooks `v1`) and
//! `ed25519` (`v1a`). Deliveries reach a receiver on 127.0.0.1 and are verified by
//! tests/verify_signatures.py, outside hookrelay's code: `v1` with the Standard
//! Webhooks reference library from PyPI (`standardwebhooks`), `v1a` with the
//! `cryptography` package's ed25519 (that library verifies `v1` only). A missing
//! python3 or package fails the test, naming what to install (`cargo xtask test`
//! installs them).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use hookrelay_model::signing::{SigningScheme, public_key};
use hookrelay_tests::receiver::Received;
use hookrelay_tests::stack::event;
use hookrelay_tests::{TestStack, hookrelay_binary};
use serde_json::{Value, json};

use crate::admin::Api;

const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=";
const HMAC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A stack whose roles and API seal and open with a secret key, router and sender
/// running, and its API.
async fn signing_stack() -> (TestStack, Api) {
    let mut stack = TestStack::new().await;
    stack.cipher = hookrelay_store::Cipher::from_base64_key(KEY).unwrap();
    stack.start_router().await;
    stack.start_sender().await;
    let api = Api::new(&stack, None).await;
    (stack, api)
}

/// Whether each delivery verifies with its key (`whsec_` or `whpk_`), as a receiver
/// using the Python libraries would decide.
fn verify(cases: &[(&str, &Received)]) -> Vec<bool> {
    let input: Vec<Value> = cases
        .iter()
        .map(|(key, r)| {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.into())))
                .collect();
            json!({
                "key": key,
                "headers": headers,
                "body_b64": base64::engine::general_purpose::STANDARD.encode(&r.body),
            })
        })
        .collect();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("verify_signatures.py");
    let install = "`cargo xtask test` installs them, or: python3 -m pip install \
                   standardwebhooks==1.3.0 cryptography";
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is needed to verify signatures ({e}); {install}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&input).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}; {install}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The stored `signing_secrets` of a webhook, as text.
async fn stored_keys(stack: &TestStack, key: &str) -> String {
    let row = stack
        .db
        .client()
        .await
        .query_one(
            "SELECT signing_secrets::text AS keys FROM webhooks WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap();
    row.get("keys")
}

/// The signatures of a delivery, by version.
fn versions(r: &Received) -> Vec<String> {
    r.header("webhook-signature")
        .unwrap_or_default()
        .split(' ')
        .filter_map(|s| s.split_once(',').map(|(v, _)| v.to_owned()))
        .collect()
}

fn public_keys(w: &Value) -> Vec<String> {
    serde_json::from_value(w["public_keys"].clone()).unwrap()
}

#[tokio::test]
async fn deliveries_of_both_schemes_verify_as_standard_webhooks_and_the_private_key_stays_sealed() {
    let (stack, api) = signing_stack().await;
    let (status, hmac) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "hmac", "url": stack.receiver.url("/hmac"), "signing_secret": HMAC}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hmac}");
    assert_eq!(hmac["signing_scheme"], "hmac-sha256", "the default");
    assert_eq!(hmac["public_keys"], json!([]));
    let (status, ed) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "ed", "url": stack.receiver.url("/ed"), "signing_scheme": "ed25519"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ed}");
    assert_eq!(ed["signing_scheme"], "ed25519");
    assert_eq!(
        ed["signing_secrets"],
        json!(["********"]),
        "the private key, masked"
    );
    let keys = public_keys(&ed);
    assert_eq!(keys.len(), 1, "{ed}");
    let public = keys[0].clone();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(public.strip_prefix("whpk_").expect("whpk_ prefix"))
        .unwrap();
    assert_eq!(raw.len(), 32, "an ed25519 public key");
    assert!(!ed.to_string().contains("whsk_"), "{ed}");
    let (_, read) = api.get("/v1/tenants/acme/webhooks/ed").await;
    assert_eq!(public_keys(&read), keys, "readable again");

    // Sealed at rest: neither the key's text nor its seed is in the column.
    let stored = stored_keys(&stack, "ed").await;
    assert!(stored.contains("enc:v1:"), "{stored}");
    assert!(!stored.contains("whsk_"), "{stored}");

    let e = event("acme", "file_uploaded", json!({"payload": {"n": 1}}));
    stack.publish(&e).await;
    let to_hmac = stack.receiver.wait_for("/hmac", 1, WAIT).await;
    let to_ed = stack.receiver.wait_for("/ed", 1, WAIT).await;
    assert_eq!(versions(&to_hmac[0]), ["v1"]);
    assert_eq!(versions(&to_ed[0]), ["v1a"]);

    let stranger = public_key(&SigningScheme::Ed25519.generate().unwrap()).unwrap();
    assert_eq!(
        verify(&[
            (HMAC, &to_hmac[0]),
            (&public, &to_ed[0]),
            (&stranger, &to_ed[0]),
            (&public, &to_hmac[0]),
            (HMAC, &to_ed[0]),
        ]),
        [true, true, false, false, false],
        "each delivery verifies with its own key only"
    );

    // The CLI shows the public key too, never the private one: of this webhook, of
    // one it creates, and of a rotation's new key pair.
    let shown = hookrelay(&stack, &["webhooks", "get", "--tenant", "acme", "ed"]);
    assert!(
        shown.contains("ed25519") && shown.contains(&public),
        "{shown}"
    );
    let url = stack.receiver.url("/cli");
    let shown = hookrelay(
        &stack,
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--key",
            "cli",
            "--url",
            &url,
            "--signing-scheme",
            "ed25519",
            "--json",
        ],
    );
    let created: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(created["signing_scheme"], "ed25519", "{shown}");
    let cli_key = public_keys(&created)[0].clone();
    let shown = hookrelay(
        &stack,
        &[
            "webhooks",
            "rotate-signing-secret",
            "--tenant",
            "acme",
            "cli",
        ],
    );
    let rotated = shown.trim();
    assert!(rotated.starts_with("whpk_"), "{shown}");
    assert_ne!(rotated, cli_key);
    let stored = stored_keys(&stack, "cli").await;
    assert!(
        stored.contains("enc:v1:") && !stored.contains("whsk_"),
        "{stored}"
    );
}

/// Runs `hookrelay` on the stack's database with its secret key; its stdout, which
/// never holds a private key.
fn hookrelay(stack: &TestStack, args: &[&str]) -> String {
    let out = Command::new(hookrelay_binary())
        .args(args)
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .env("HOOKRELAY_SECRET_KEY", KEY)
        .env_remove("HOOKRELAY_WEBHOOK_SIGNING_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shown}{logged}");
    assert!(
        !shown.contains("whsk_") && !logged.contains("whsk_"),
        "{shown}{logged}"
    );
    shown
}

#[tokio::test]
async fn an_ed25519_rotation_and_a_switch_of_scheme_sign_with_both_keys_during_the_overlap() {
    let (stack, api) = signing_stack().await;
    let (status, ed) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "ed", "url": stack.receiver.url("/ed"), "signing_scheme": "ed25519"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ed}");
    let first = public_keys(&ed)[0].clone();

    let (status, rotated) = api
        .post(
            "/v1/tenants/acme/webhooks/ed/rotate-signing-secret",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated.get("signing_secret").is_none(), "{rotated}");
    assert!(!rotated.to_string().contains("whsk_"), "{rotated}");
    let second = rotated["public_key"].as_str().unwrap().to_owned();
    assert_eq!(
        public_keys(&rotated["webhook"]),
        [second.clone(), first.clone()]
    );

    let e = event("acme", "file_uploaded", json!({"payload": {"n": 1}}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/ed", 1, WAIT).await;
    assert_eq!(versions(&got[0]), ["v1a", "v1a"]);
    assert_eq!(
        verify(&[(&first, &got[0]), (&second, &got[0])]),
        [true, true],
        "both keys verify during the overlap"
    );

    let (status, rotated) = api
        .post(
            "/v1/tenants/acme/webhooks/ed/rotate-signing-secret",
            json!({"keep_previous": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let third = rotated["public_key"].as_str().unwrap().to_owned();
    assert_eq!(
        public_keys(&rotated["webhook"]),
        std::slice::from_ref(&third)
    );
    let e = event("acme", "file_uploaded", json!({"payload": {"n": 2}}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/ed", 2, WAIT).await;
    assert_eq!(
        verify(&[(&second, &got[1]), (&third, &got[1])]),
        [false, true],
        "the dropped key no longer signs"
    );

    // An HMAC webhook switched to ed25519: the key pair is made at once and the
    // secret keeps signing beside it until the next rotation.
    let (status, hmac) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "sw", "url": stack.receiver.url("/sw"), "signing_secret": HMAC}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hmac}");
    let (status, switched) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/sw",
            Some(json!({"signing_scheme": "ed25519"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(switched["signing_scheme"], "ed25519");
    let switched_key = public_keys(&switched)[0].clone();
    let e = event("acme", "file_uploaded", json!({"payload": {"n": 3}}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/sw", 1, WAIT).await;
    assert_eq!(versions(&got[0]), ["v1a", "v1"]);
    assert_eq!(
        verify(&[(HMAC, &got[0]), (&switched_key, &got[0])]),
        [true, true],
        "old receivers (v1) and new ones (v1a) both verify"
    );
}

#[tokio::test]
async fn refused_combinations_answer_400_naming_the_field() {
    let (stack, api) = signing_stack().await;
    let url = stack.receiver.url("/x");
    for (body, field) in [
        (
            json!({"key": "a", "url": url, "signing_scheme": "ed25519", "signing_secret": HMAC}),
            "signing_secret",
        ),
        (
            json!({"key": "b", "url": url, "signing_scheme": "rsa"}),
            "signing_scheme",
        ),
    ] {
        let (status, answer) = api.post("/v1/tenants/acme/webhooks", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, _) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "ed", "url": url, "signing_scheme": "ed25519"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = api
        .post(
            "/v1/tenants/acme/webhooks/ed/rotate-signing-secret",
            json!({"signing_secret": HMAC}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "signing_secret", "{answer}");
    let (_, after) = api.get("/v1/tenants/acme/webhooks/ed").await;
    assert_eq!(
        public_keys(&after).len(),
        1,
        "a refused rotation changed nothing"
    );
    let (_, listed) = api.get("/v1/tenants/acme/webhooks").await;
    assert_eq!(listed["data"].as_array().map_or(0, Vec::len), 1, "{listed}");
}

#[tokio::test]
async fn the_portal_shows_an_ed25519_endpoints_public_keys_and_a_rotation_shows_the_new_one() {
    use crate::portal::{TOKEN, csrf_of, get, mint, open, post};
    let stack = TestStack::new().await;
    let mut new = hookrelay_tests::stack::webhook("acme", "ed", &stack.receiver.url("/ed"));
    new.signing_scheme = SigningScheme::Ed25519;
    let created = stack.create_webhook(new).await;
    let first = created.public_keys[0].clone();
    let base = stack.serve_portal(Some(TOKEN), &[]).await;
    let link = mint(&base, "acme", json!({})).await;
    let session = open(&base, &link).await;

    let (status, page) = get(&format!("{session}/endpoints/ed")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("ed25519") && page.contains(&first), "{page}");

    let (status, rotated) = post(
        &format!("{session}/endpoints/ed/rotate-secret"),
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated.contains("id=\"public-key\""), "{rotated}");
    assert!(
        !rotated.contains("whsk_") && !rotated.contains("whsec_"),
        "{rotated}"
    );
    let (_, page) = get(&format!("{session}/endpoints/ed")).await;
    let now = hookrelay_store::webhooks::get(&stack.db.client().await, &stack.cipher, "acme", "ed")
        .await
        .unwrap();
    assert_eq!(now.public_keys.len(), 2, "the previous key keeps signing");
    assert_eq!(now.public_keys[1], first);
    assert!(rotated.contains(&now.public_keys[0]), "{rotated}");
    for key in &now.public_keys {
        assert!(page.contains(key.as_str()), "{page}");
    }
}

#[tokio::test]
async fn the_console_form_makes_an_ed25519_webhook_and_its_page_shows_the_public_keys() {
    const TOKEN: &str = "signatures-operator-token";
    let mut stack = TestStack::new().await;
    stack.cipher = hookrelay_store::Cipher::from_base64_key(KEY).unwrap();
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let browser = hookrelay_tests::Browser::start().await;
    crate::console::sign_in(&browser, &base, TOKEN).await;
    browser
        .goto(&format!("{base}/console/tenants/acme/webhooks"))
        .await;
    browser.wait_heading("New webhook in acme").await;
    browser.fill("#key", "ed").await;
    browser.fill("#url", &stack.receiver.url("/ed")).await;
    browser.click("#signing_scheme option[value=ed25519]").await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_heading("Webhook ed").await;
    let made = read_ed(&stack).await;
    assert_eq!(made.signing_scheme, SigningScheme::Ed25519);
    let shown = browser.page_text().await;
    assert!(shown.contains(&made.public_keys[0]), "{shown}");
    browser.screenshot("webhook-ed25519").await;

    browser
        .click("form[action$='/rotate-signing-secret'] button")
        .await;
    browser.wait_heading("New signing key").await;
    let rotated = read_ed(&stack).await;
    assert_eq!(rotated.public_keys.len(), 2);
    let shown = browser.page_text().await;
    assert!(shown.contains(&rotated.public_keys[0]), "{shown}");
    assert!(!shown.contains("whsk_"), "{shown}");
}

async fn read_ed(stack: &TestStack) -> hookrelay_model::webhook::Webhook {
    hookrelay_store::webhooks::get(&stack.db.client().await, &stack.cipher, "acme", "ed")
        .await
        .unwrap()
}
