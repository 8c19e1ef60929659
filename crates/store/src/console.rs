//! The `console_sessions` table: who is signed in to the operator console. The
//! cookie holds a random id; only its SHA-256 is stored, with the session's CSRF
//! token and what it was opened with (a tenant token, or the operator's).

use std::time::Duration;

use deadpool_postgres::GenericClient;
use hookrelay_model::access::Caller;
use hookrelay_model::webhook::Secret;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::{random_text, sha256};
use crate::tokens;

/// Who a session was opened for.
pub enum Opener {
    /// The operator, with the SHA-256 of the operator token it signed in with.
    Operator { token_sha256: Vec<u8> },
    /// A tenant token (its id).
    Token(Uuid),
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    /// Present on operator sessions: compared with the operator token now.
    pub operator_token_sha256: Option<Vec<u8>>,
    pub csrf: Secret,
}

/// Opens a session for `ttl`; returns the cookie's value (the only copy of the id).
/// Expired sessions are removed on the way.
pub async fn open(
    db: &impl GenericClient,
    opener: &Opener,
    ttl: Duration,
) -> Result<Secret, StoreError> {
    let id = random_text()?;
    let csrf = random_text()?;
    let (token_id, operator) = match opener {
        Opener::Operator { token_sha256 } => (None, Some(token_sha256.as_slice())),
        Opener::Token(id) => (Some(*id), None),
    };
    db.execute("DELETE FROM console_sessions WHERE expires_at < now()", &[])
        .await?;
    db.execute(
        "INSERT INTO console_sessions (id_sha256, token_id, operator_token_sha256, csrf, \
         expires_at) VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        &[
            &sha256(&id),
            &token_id,
            &operator,
            &csrf,
            &ttl.as_secs_f64(),
        ],
    )
    .await?;
    Ok(Secret::new(id))
}

/// The live session a cookie names, if any (expired and revoked ones are none).
pub async fn find(db: &impl GenericClient, id: &str) -> Result<Option<Session>, StoreError> {
    let row = db
        .query_opt(
            "SELECT s.operator_token_sha256, s.csrf, t.tenant, t.scope \
             FROM console_sessions s LEFT JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_sha256 = $1 AND s.expires_at > now()",
            &[&sha256(id)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let operator: Option<Vec<u8>> = row.try_get("operator_token_sha256")?;
    let tenant: Option<String> = row.try_get("tenant")?;
    let caller = match (&operator, tenant) {
        (Some(_), _) => Caller::Operator,
        (None, Some(tenant)) => Caller::Tenant {
            tenant,
            scope: tokens::scope_of(&row)?,
        },
        (None, None) => return Ok(None),
    };
    Ok(Some(Session {
        caller,
        operator_token_sha256: operator,
        csrf: Secret::new(row.try_get::<_, String>("csrf")?),
    }))
}

/// Ends the session a cookie names (signing out); none is no error.
pub async fn close(db: &impl GenericClient, id: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM console_sessions WHERE id_sha256 = $1",
        &[&sha256(id)],
    )
    .await?;
    Ok(())
}
