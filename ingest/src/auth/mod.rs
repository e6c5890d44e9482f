//! Authentication and authorization of API requests.
//!
//! Every protected route calls [`Authenticator::authenticate`] and then
//! [`Principal::require`]. Three modes, chosen explicitly at the edge:
//! - [`Authenticator::Jwt`]: a Bearer JWT (RS256 or ES256) verified against a JWKS
//!   ([`JwtVerifier`]): signature, `iss`, `aud` or Cognito `client_id`, `exp`/`nbf`/`iat` with a
//!   small leeway, `token_use` = `access` when present. `alg: none`, HMAC algorithms and tokens
//!   without `kid` are rejected before any key is looked up.
//! - [`Authenticator::TrustGateway`]: in the Lambda behind API Gateway's JWT authorizer, trust the
//!   claims the authorizer put in the request context (no second signature check).
//! - [`Authenticator::Disabled`]: no authentication; every request is producer `anonymous` with
//!   every scope. Building it logs a warning (once per process start).
//!
//! The producer id recorded on events is the token's `client_id` (Cognito client-credentials
//! tokens) or else its `sub`.

pub mod claims;
pub mod gateway;
pub mod jwks;
pub mod local;
pub mod verifier;

use std::sync::Arc;

use axum::http::{Extensions, HeaderMap, StatusCode, header};

use crate::problem::Problem;

pub use claims::{ClaimRules, Claims};
pub use jwks::{HttpJwksFetcher, JwksCache, JwksFetcher, StaticJwks};
pub use local::{DEFAULT_TOKEN_TTL, LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer, LocalIssuerError, mint_token};
pub use verifier::{JwtConfig, JwtVerifier};

/// Scope required by `POST /v1/events`.
pub const SCOPE_EVENTS_WRITE: &str = "sluice/events.write";
/// Scope required by the read routes (`GET /v1/aggregates`).
pub const SCOPE_METRICS_READ: &str = "sluice/metrics.read";
/// Producer id of every request when authentication is disabled.
pub const ANONYMOUS: &str = "anonymous";

/// Who is calling, as established by the [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The producer id recorded on events (`client_id`, else `sub`).
    pub producer: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// True when authentication is disabled (every scope granted).
    pub all_scopes: bool,
}

impl Principal {
    /// `Ok` when the principal holds `scope`, else [`AuthError::MissingScope`].
    pub fn require(&self, scope: &str) -> Result<(), AuthError> {
        if self.all_scopes || self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope.to_owned()))
        }
    }
}

/// Why a request was not authenticated (401), not authorized (403), or could not be checked (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header: send a token.
    #[error("missing bearer token")]
    MissingToken,
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg` is `none`, an HMAC algorithm, or otherwise not accepted.
    #[error("token algorithm {0:?} is not accepted (use RS256 or ES256)")]
    AlgorithmNotAllowed(String),
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKeyId,
    /// No key with this `kid` in the JWKS (even after a refetch).
    #[error("no signing key with kid {0:?}")]
    UnknownKey(String),
    /// The signature does not verify (tampered token or wrong key).
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// Neither `aud` nor `client_id` is an accepted audience / app client.
    #[error("token audience or client is not accepted")]
    WrongAudience,
    /// `token_use` is present and not `access` (e.g. a Cognito id token).
    #[error("token_use must be access")]
    WrongTokenUse,
    /// A required claim is missing or has the wrong type.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// Authenticated, but the scope is not granted: ask for a token with it (403).
    #[error("missing scope {0}")]
    MissingScope(String),
    /// The signing keys could not be fetched and none is cached: retry later (503).
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// The HTTP status: 401, 403 ([`AuthError::MissingScope`]) or 503 ([`AuthError::KeysUnavailable`]).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingScope(_) => StatusCode::FORBIDDEN,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The problem+json response, with `WWW-Authenticate` (RFC 6750) for 401/403.
    pub fn to_problem(&self) -> Problem {
        match self.status() {
            StatusCode::FORBIDDEN => {
                let scope = match self {
                    Self::MissingScope(s) => s.as_str(),
                    _ => "",
                };
                let mut p = Problem::new(StatusCode::FORBIDDEN, "insufficient-scope", "Forbidden")
                    .detail(format!("The token lacks the scope {scope}."))
                    .with("required_scope", serde_json::Value::String(scope.to_owned()));
                if let Ok(v) = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"").parse() {
                    p.headers.push((header::WWW_AUTHENTICATE, v));
                }
                p
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "auth-unavailable", "Service Unavailable")
                    .detail("The token could not be checked right now; retry later.")
                    .retry_after(5)
            }
            _ => {
                let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
                    .detail(format!("{self}. Send Authorization: Bearer <access token>."));
                let value = if matches!(self, Self::MissingToken) {
                    "Bearer".to_owned()
                } else {
                    format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        self.to_string().replace('"', "'")
                    )
                };
                if let Ok(v) = value.parse() {
                    p.headers.push((header::WWW_AUTHENTICATE, v));
                }
                p
            }
        }
    }
}

/// How requests are authenticated (see the module docs).
#[derive(Clone)]
pub enum Authenticator {
    /// Verify a Bearer JWT.
    Jwt(Arc<JwtVerifier>),
    /// Trust API Gateway's JWT authorizer context (Lambda only, explicit configuration).
    TrustGateway,
    /// No authentication (explicit configuration; warns at construction).
    Disabled,
}

impl Authenticator {
    /// JWT verification with `verifier`.
    pub fn jwt(verifier: JwtVerifier) -> Self {
        Self::Jwt(Arc::new(verifier))
    }

    /// Authentication off. Logs a warning: call it once per process start.
    pub fn disabled() -> Self {
        tracing::warn!("authentication is DISABLED: every request is accepted as producer {ANONYMOUS:?}");
        Self::Disabled
    }

    /// Trust API Gateway's authorizer claims. Logs at info level what is trusted.
    pub fn trust_gateway() -> Self {
        tracing::info!("trusting the API Gateway JWT authorizer context (no second token check)");
        Self::TrustGateway
    }

    /// Establishes the caller from the request headers (and, for
    /// [`Authenticator::TrustGateway`], the Lambda request context in `extensions`).
    /// `now` is Unix seconds.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        now: i64,
    ) -> Result<Principal, AuthError> {
        match self {
            Self::Jwt(verifier) => {
                let token = bearer(headers)?;
                verifier.verify(token, now).await
            }
            Self::TrustGateway => gateway::principal(extensions),
            Self::Disabled => Ok(Principal { producer: ANONYMOUS.to_owned(), scopes: Vec::new(), all_scopes: true }),
        }
    }

    /// `jwt`, `trust-gateway` or `disabled` (for logs and health).
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Jwt(_) => "jwt",
            Self::TrustGateway => "trust-gateway",
            Self::Disabled => "disabled",
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::MissingToken)?;
    let value = value.to_str().map_err(|_| AuthError::Malformed("authorization header is not ASCII".into()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&headers("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(&headers("Basic abc")), Err(AuthError::MissingToken));
        assert_eq!(bearer(&headers("Bearer ")), Err(AuthError::MissingToken));
        assert_eq!(bearer(&HeaderMap::new()), Err(AuthError::MissingToken));
    }

    #[test]
    fn statuses() {
        assert_eq!(AuthError::Expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(AuthError::MissingScope("x".into()).status(), StatusCode::FORBIDDEN);
        assert_eq!(AuthError::KeysUnavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn scopes() {
        let p = Principal { producer: "p".into(), scopes: vec![SCOPE_EVENTS_WRITE.into()], all_scopes: false };
        assert!(p.require(SCOPE_EVENTS_WRITE).is_ok());
        assert_eq!(p.require(SCOPE_METRICS_READ), Err(AuthError::MissingScope(SCOPE_METRICS_READ.into())));
    }
}
