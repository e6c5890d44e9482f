//! JWKS: fetching signing keys and caching them with rotation.
//!
//! Contract of [`JwksCache::key`]:
//! - keys are fetched on first use, and again when older than `max_age`;
//! - an unknown `kid` triggers a refetch (key rotation), at most once per `min_refresh`
//!   interval, so a flood of tokens with random `kid`s cannot hammer the IdP;
//! - a failed fetch keeps the previous keys; with no keys at all it is
//!   [`AuthError::KeysUnavailable`] (503), never a 401.
//! - JWKs with an unsupported or malformed key are skipped, not fatal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use url::Url;

use super::AuthError;
use crate::eventlog::BoxFuture;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why a JWKS could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fetching JWKS from {url}: {message}")]
pub struct FetchError {
    /// Where from.
    pub url: String,
    /// What went wrong.
    pub message: String,
}

/// Where keys come from.
pub trait JwksFetcher: Send + Sync + 'static {
    /// The current key set.
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, FetchError>>;
}

/// A fixed key set (the embedded runtime's own issuer: no HTTP round trip to itself).
#[derive(Debug, Clone)]
pub struct StaticJwks(pub JwkSet);

impl JwksFetcher for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, FetchError>> {
        let set = self.0.clone();
        Box::pin(async move { Ok(set) })
    }
}

enum AnyClient {
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>),
    Plain(Client<HttpConnector, Empty<Bytes>>),
}

/// Fetches a JWKS over HTTP(S) (`https` with the system's root certificates; plain `http` for
/// local servers such as moto), 5 s timeout, 1 MiB limit.
pub struct HttpJwksFetcher {
    url: Url,
    client: AnyClient,
    timeout: Duration,
}

impl HttpJwksFetcher {
    /// A fetcher for `url`.
    pub fn new(url: Url) -> Self {
        // The provider is named explicitly: with both of rustls' providers compiled into one
        // binary (other crates pull in `ring`), the process-wide default cannot be chosen.
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider) {
            Ok(builder) => AnyClient::Tls(
                Client::builder(TokioExecutor::new()).build(builder.https_or_http().enable_http1().build()),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "no system root certificates: JWKS over https will fail");
                AnyClient::Plain(Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
            }
        };
        Self { url, client, timeout: Duration::from_secs(5) }
    }

    async fn get(&self) -> Result<JwkSet, String> {
        let uri: http::Uri = self.url.as_str().parse().map_err(|e| format!("bad url: {e}"))?;
        let response = match &self.client {
            AnyClient::Tls(c) => c.get(uri).await,
            AnyClient::Plain(c) => c.get(uri).await,
        }
        .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body =
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect().await.map_err(|e| e.to_string())?.to_bytes();
        parse_jwks(&body)
    }
}

impl JwksFetcher for HttpJwksFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, FetchError>> {
        Box::pin(async move {
            let err = |message: String| FetchError { url: self.url.to_string(), message };
            match tokio::time::timeout(self.timeout, self.get()).await {
                Ok(Ok(set)) => Ok(set),
                Ok(Err(message)) => Err(err(message)),
                Err(_) => Err(err("timed out".into())),
            }
        })
    }
}

/// Parses a JWKS document, skipping keys this crate cannot use.
pub fn parse_jwks(body: &[u8]) -> Result<JwkSet, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys = raw.keys.into_iter().filter_map(|k| serde_json::from_value::<Jwk>(k).ok()).collect();
    Ok(JwkSet { keys })
}

/// A usable key: the decoding key and the algorithm the JWK pins, if any.
pub struct CachedKey {
    /// For `jsonwebtoken::decode`.
    pub key: DecodingKey,
    /// The JWK's `alg` name, when given (the token's `alg` must then match).
    pub alg: Option<String>,
}

struct KeyState {
    keys: HashMap<String, Arc<CachedKey>>,
    fetched_at: Option<Instant>,
}

/// JWKS cache with refetch on unknown `kid` (see the module docs).
pub struct JwksCache {
    fetcher: Arc<dyn JwksFetcher>,
    state: RwLock<KeyState>,
    refresh: Mutex<()>,
    min_refresh: Duration,
    max_age: Duration,
}

impl JwksCache {
    /// A cache over `fetcher`; `min_refresh` bounds refetches on unknown `kid`, `max_age`
    /// forces a periodic refetch.
    pub fn new(fetcher: Arc<dyn JwksFetcher>, min_refresh: Duration, max_age: Duration) -> Self {
        Self {
            fetcher,
            state: RwLock::new(KeyState { keys: HashMap::new(), fetched_at: None }),
            refresh: Mutex::new(()),
            min_refresh,
            max_age,
        }
    }

    /// The key with `kid`, fetching (or refetching, rate-limited) as needed.
    pub async fn key(&self, kid: &str) -> Result<Arc<CachedKey>, AuthError> {
        {
            let state = self.state.read().await;
            if let Some(key) = state.keys.get(kid)
                && state.fetched_at.is_some_and(|t| t.elapsed() < self.max_age)
            {
                return Ok(key.clone());
            }
        }
        let _guard = self.refresh.lock().await;
        let (fetch, have_any) = {
            let state = self.state.read().await;
            let known = state.keys.contains_key(kid);
            let fetch = match state.fetched_at {
                None => true,
                Some(t) if t.elapsed() >= self.max_age => true,
                Some(t) => !known && t.elapsed() >= self.min_refresh,
            };
            (fetch, !state.keys.is_empty())
        };
        if fetch {
            match self.fetcher.fetch().await {
                Ok(set) => {
                    let keys = to_keys(&set);
                    tracing::info!(keys = keys.len(), "fetched JWKS");
                    let mut state = self.state.write().await;
                    state.keys = keys;
                    state.fetched_at = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS fetch failed");
                    if !have_any {
                        return Err(AuthError::KeysUnavailable);
                    }
                    // Keep the old keys; try again after min_refresh, not on every request.
                    let mut state = self.state.write().await;
                    let now = Instant::now();
                    state.fetched_at =
                        Some(now.checked_sub(self.max_age.saturating_sub(self.min_refresh)).unwrap_or(now));
                }
            }
        }
        let state = self.state.read().await;
        state.keys.get(kid).cloned().ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))
    }
}

fn to_keys(set: &JwkSet) -> HashMap<String, Arc<CachedKey>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| serde_json::to_value(a).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            Some((kid, Arc::new(CachedKey { key, alg })))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        sets: Vec<&'static str>,
    }

    impl JwksFetcher for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, FetchError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let body = self.sets.get(n).or(self.sets.last()).copied().unwrap_or("");
            Box::pin(async move {
                parse_jwks(body.as_bytes()).map_err(|message| FetchError { url: "test".into(), message })
            })
        }
    }

    const K1: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#;
    const K2: &str = r#"{"keys":[{"kty":"RSA","kid":"k2","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},{"kty":"weird","kid":"x"}]}"#;

    #[tokio::test(start_paused = true)]
    async fn rotation_refetches_on_unknown_kid_rate_limited() {
        let fetcher = Arc::new(Counting { calls: AtomicUsize::new(0), sets: vec![K1, K2] });
        let cache = JwksCache::new(fetcher.clone(), Duration::from_secs(30), Duration::from_secs(3600));
        let k1 = cache.key("k1").await.unwrap();
        assert_eq!(k1.alg.as_deref(), Some("RS256"));
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
        // Unknown kid right after a fetch: no refetch (rate limit).
        assert_eq!(cache.key("k2").await.err(), Some(AuthError::UnknownKey("k2".into())));
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(31)).await;
        // Now the unknown kid triggers one refetch, which brings k2 (rotation) and drops k1.
        assert!(cache.key("k2").await.is_ok());
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 2);
        assert!(cache.key("k2").await.is_ok());
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 2);
    }

    struct Failing;
    impl JwksFetcher for Failing {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, FetchError>> {
            Box::pin(async { Err(FetchError { url: "x".into(), message: "down".into() }) })
        }
    }

    #[tokio::test]
    async fn no_keys_at_all_is_unavailable_not_unauthorized() {
        let cache = JwksCache::new(Arc::new(Failing), Duration::from_secs(30), Duration::from_secs(3600));
        assert_eq!(cache.key("k1").await.err(), Some(AuthError::KeysUnavailable));
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let set = parse_jwks(K2.as_bytes()).unwrap();
        let keys = to_keys(&set);
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["k2"]);
        assert!(parse_jwks(b"[]").is_err());
    }
}
