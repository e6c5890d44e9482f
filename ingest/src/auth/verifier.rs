//! JWT verification: header policy, key lookup (JWKS), signature, then the claim checks.
//!
//! Verified tokens are cached (by the exact token string, up to [`TOKEN_CACHE_CAPACITY`]) so a
//! producer reusing its token pays for the signature once; the time-based claim checks still run
//! on every request. Consequence: a token stays accepted until its `exp` even if its signing key
//! is removed from the JWKS meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use url::Url;

use super::claims::{self, ClaimRules, Claims};
use super::jwks::{HttpJwksFetcher, JwksCache, JwksFetcher};
use super::{AuthError, Principal};

/// Verified tokens kept (the cache is cleared when full).
pub const TOKEN_CACHE_CAPACITY: usize = 4096;

/// How tokens are verified. Built once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The exact expected `iss`, e.g. `https://cognito-idp.<region>.amazonaws.com/<pool id>`.
    pub issuer: String,
    /// Accepted `aud` values or Cognito app client ids; must not be empty.
    pub audiences: Vec<String>,
    /// The JWKS URL; default `<issuer>/.well-known/jwks.json` (Cognito's location).
    pub jwks_url: Option<Url>,
    /// Clock skew allowed on `exp`/`nbf`/`iat` (default 30 s).
    pub leeway: Duration,
    /// Least time between two JWKS fetches triggered by unknown `kid`s (default 30 s).
    pub jwks_min_refresh: Duration,
    /// JWKS refetched when older than this (default 1 h).
    pub jwks_max_age: Duration,
}

impl JwtConfig {
    /// A configuration with the default leeway and JWKS timings.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            jwks_url: None,
            leeway: Duration::from_secs(30),
            jwks_min_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(3600),
        }
    }

    /// The JWKS URL to fetch.
    pub fn resolved_jwks_url(&self) -> Result<Url, String> {
        match &self.jwks_url {
            Some(u) => Ok(u.clone()),
            None => Url::parse(&format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/')))
                .map_err(|e| format!("issuer {:?} does not give a JWKS URL: {e}", self.issuer)),
        }
    }
}

/// Why a verifier could not be built (configuration errors, at the edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// No audience / client id configured: every token would be rejected.
    #[error("at least one accepted audience or app client id is required")]
    NoAudience,
    /// The issuer is empty.
    #[error("the issuer is required")]
    NoIssuer,
    /// The JWKS URL is not usable.
    #[error("{0}")]
    BadJwksUrl(String),
}

/// Verifies Bearer JWTs (RS256, ES256) against a JWKS.
pub struct JwtVerifier {
    rules: ClaimRules,
    jwks: JwksCache,
    cache: Mutex<HashMap<Box<str>, Arc<Claims>>>,
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

impl JwtVerifier {
    /// A verifier fetching keys from the configured JWKS URL over HTTP(S).
    pub fn from_config(config: JwtConfig) -> Result<Self, JwtConfigError> {
        let url = config.resolved_jwks_url().map_err(JwtConfigError::BadJwksUrl)?;
        Self::with_fetcher(config, Arc::new(HttpJwksFetcher::new(url)))
    }

    /// A verifier over any key source (the local issuer's static JWKS, tests).
    pub fn with_fetcher(config: JwtConfig, fetcher: Arc<dyn JwksFetcher>) -> Result<Self, JwtConfigError> {
        if config.issuer.is_empty() {
            return Err(JwtConfigError::NoIssuer);
        }
        if config.audiences.is_empty() {
            return Err(JwtConfigError::NoAudience);
        }
        let leeway_secs = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        Ok(Self {
            rules: ClaimRules { issuer: config.issuer, audiences: config.audiences, leeway_secs },
            jwks: JwksCache::new(fetcher, config.jwks_min_refresh, config.jwks_max_age),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies `token` at Unix time `now` (seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Principal, AuthError> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(token).cloned());
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = Arc::new(self.verify_signature(token).await?);
                if let Ok(mut cache) = self.cache.lock() {
                    if cache.len() >= TOKEN_CACHE_CAPACITY {
                        cache.clear();
                    }
                    cache.insert(token.into(), c.clone());
                }
                c
            }
        };
        claims::check(&claims, &self.rules, now)
    }

    /// Header policy, key lookup and signature; returns the (not yet checked) claims.
    async fn verify_signature(&self, token: &str) -> Result<Claims, AuthError> {
        let header_b64 = token.split('.').next().unwrap_or("");
        if token.split('.').count() != 3 {
            return Err(AuthError::Malformed("a JWT has three dot-separated parts".into()));
        }
        let header_json =
            URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| AuthError::Malformed("header is not base64url".into()))?;
        let header: RawHeader = serde_json::from_slice(&header_json)
            .map_err(|_| AuthError::Malformed("header is not a JSON object".into()))?;
        let alg_name = header.alg.unwrap_or_default();
        let alg = match alg_name.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => return Err(AuthError::AlgorithmNotAllowed(other.to_owned())),
        };
        let kid = header.kid.filter(|k| !k.is_empty()).ok_or(AuthError::MissingKeyId)?;
        let key = self.jwks.key(&kid).await?;
        if key.alg.as_deref().is_some_and(|a| a != alg_name) {
            return Err(AuthError::AlgorithmNotAllowed(format!("{alg_name} (key {kid} is for another algorithm)")));
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                    AuthError::AlgorithmNotAllowed(format!("{alg_name} (does not match key {kid})"))
                }
                jsonwebtoken::errors::ErrorKind::Json(_) => {
                    AuthError::InvalidClaims("claims are not valid JSON of the expected types".into())
                }
                _ => AuthError::Malformed(e.to_string()),
            }),
        }
    }
}
