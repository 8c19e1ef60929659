use std::collections::BTreeMap;

use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::webhook::{Secret, WebhookUpdate};
use hookrelay_store::webhooks::{self};
use hookrelay_store::{self as store, StoreError, environments};
use hookrelay_tests::db::{TestDb, drop_database};
use hookrelay_tests::stack::webhook;

#[tokio::test]
async fn migrations_create_the_database_and_run_twice_cleanly() {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    store::migrate(&url)
        .await
        .expect("first run creates and migrates");
    store::migrate(&url).await.expect("second run is a no-op");
    let pool = store::pool(&url, 1).unwrap();
    let client = pool.get().await.unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in [
        "deliveries",
        "delivery_attempts",
        "environments",
        "events",
        "tenants",
        "webhooks",
    ] {
        assert!(tables.contains(&t.to_owned()), "{t} in {tables:?}");
    }
    drop(client);
    pool.close();
    drop_database(&name);
}

#[tokio::test]
async fn webhooks_round_trip_and_keys_are_unique_per_tenant() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let mut new = webhook("acme", "event_webhook", "https://{{HOST}}/hooks");
    new.event_types = vec!["embed_initialized".into()];
    new.secret = Some(Secret::new("pw"));
    new.retry_on = RetryPolicy::parse(&["timeout", "5xx"]).unwrap();
    let created = webhooks::create(&c, &new).await.unwrap();
    let got = webhooks::get(&c, "acme", "event_webhook").await.unwrap();
    assert_eq!(got, created);
    assert_eq!(got.secret.as_ref().unwrap().expose(), "pw");
    assert_eq!(got.retry_on.to_strings(), vec!["timeout", "5xx"]);
    assert_eq!(
        webhooks::get(&c, "acme", &created.id.to_string())
            .await
            .unwrap()
            .key,
        "event_webhook"
    );

    let dup = webhooks::create(&c, &webhook("acme", "event_webhook", "https://x.test/")).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("event_webhook")),
        "{dup:?}"
    );
    webhooks::create(&c, &webhook("globex", "event_webhook", "https://x.test/"))
        .await
        .expect("other tenant may reuse a key");
    assert!(
        matches!(
            webhooks::get(&c, "globex", &created.id.to_string()).await,
            Err(StoreError::NotFound(_))
        ),
        "never across tenants"
    );

    let renamed = webhooks::update(
        &c,
        "acme",
        "event_webhook",
        &WebhookUpdate {
            key: Some("renamed".into()),
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.key, "renamed");
    assert!(!renamed.enabled);
    assert_eq!(
        renamed.disabled_reason.as_deref(),
        Some("disabled by an operator")
    );
    webhooks::delete(&c, "acme", "renamed").await.unwrap();
    assert!(matches!(
        webhooks::get(&c, "acme", "renamed").await,
        Err(StoreError::NotFound(_))
    ));

    let bad = webhooks::create(&c, &webhook("acme", "k", "ftp://x")).await;
    assert!(
        matches!(bad, Err(StoreError::Invalid(ref m)) if m.starts_with("url")),
        "{bad:?}"
    );
    let json = serde_json::to_string(&got).unwrap();
    assert!(
        !json.contains("\"pw\""),
        "secrets are never serialized: {json}"
    );
}

#[tokio::test]
async fn environment_variables_merge_and_are_masked_when_shown() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let vars = BTreeMap::from([("HOST".to_owned(), "api.acme.test".to_owned())]);
    environments::set(&c, "acme", "Production", &vars)
        .await
        .unwrap();
    let more = BTreeMap::from([("TOKEN".to_owned(), "tok-123456".to_owned())]);
    let shown = environments::set(&c, "acme", "Production", &more)
        .await
        .unwrap();
    assert_eq!(shown.variables["TOKEN"], "tok***");
    assert_eq!(shown.variables["HOST"], "api***");
    let real = environments::variables(&c, "acme", "Production")
        .await
        .unwrap();
    assert_eq!(real["TOKEN"], "tok-123456");
    assert!(
        environments::variables(&c, "globex", "Production")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tls_to_postgres_verifies_the_server_and_encrypts() {
    // This machine's Postgres serves TLS with Debian's self-signed certificate for
    // `localhost`; elsewhere there may be none, and then there is nothing to test.
    let ca = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let admin = TestDb::new().await;
    let ssl: String = admin
        .client()
        .await
        .query_one("SHOW ssl", &[])
        .await
        .unwrap()
        .get(0);
    if ssl != "on" || !std::path::Path::new(ca).exists() {
        eprintln!("skipped: the local Postgres does not serve TLS with {ca}");
        return;
    }
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let verified =
        format!("postgres://postgres@localhost:5432/{name}?sslmode=verify-full&sslrootcert={ca}");
    store::migrate(&verified)
        .await
        .expect("migrate over verified TLS");
    let pool = store::pool(&verified, 1).unwrap();
    let encrypted: bool = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is encrypted");
    pool.close();

    // The certificate names `localhost`: reached as 127.0.0.1 it is refused, so the
    // server's identity is checked, not just the encryption.
    let wrong_name =
        format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=verify-full&sslrootcert={ca}");
    let err = store::pool(&wrong_name, 1)
        .unwrap()
        .get()
        .await
        .expect_err("refused");
    let text = format!("{err:?}");
    assert!(
        text.contains("NotValidForName") || text.to_lowercase().contains("certificate"),
        "{text}"
    );

    // No sslmode: plain, as before.
    let plain = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let plain_ssl: bool = store::pool(&plain, 1)
        .unwrap()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!plain_ssl);
    drop_database(&name);
}
