//! The embedded runtime's own token issuer: an ECDSA P-256 key pair kept in the data dir
//! (`<data_dir>/auth/issuer-es256.pk8`, PKCS#8 DER, file mode 0600, created on first use), tokens
//! signed ES256 with `iss` = [`LOCAL_ISSUER`], `aud` = [`LOCAL_AUDIENCE`], and the public key
//! served as a JWKS at `/.well-known/jwks.json`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::jwks::StaticJwks;
use super::verifier::{JwtConfig, JwtConfigError, JwtVerifier};

/// `iss` of local tokens.
pub const LOCAL_ISSUER: &str = "sluice-local";
/// `aud` of local tokens.
pub const LOCAL_AUDIENCE: &str = "sluice";
/// Key file, relative to the data dir.
pub const KEY_FILE: &str = "auth/issuer-es256.pk8";
/// Lifetime of tokens minted by `sluice token` unless told otherwise (24 h).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// `sluice token`: a token for `producer` with `scopes` (callers default to
/// [`crate::SCOPE_EVENTS_WRITE`]) from the issuer in `data_dir`, creating its key if needed.
/// The same data dir as `sluice up` must be used, or the server will not know the key.
pub fn mint_token(data_dir: &Path, producer: &str, scopes: &[&str], ttl: Duration) -> Result<String, LocalIssuerError> {
    LocalIssuer::load_or_create(data_dir)?.mint(producer, scopes, ttl)
}

/// Why the issuer could not be loaded or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum LocalIssuerError {
    /// The key file could not be read or written: check the data dir and its permissions.
    #[error("issuer key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file exists but is not a P-256 PKCS#8 key: move it away to get a new one.
    #[error("issuer key file {0} is not an ECDSA P-256 PKCS#8 key")]
    BadKey(PathBuf),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The local issuer (cheap to clone).
#[derive(Clone)]
pub struct LocalIssuer {
    kid: String,
    key: Arc<EncodingKey>,
    jwk: Jwk,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// Loads the key pair from `data_dir`, creating it (mode 0600) if absent. Concurrent first
    /// calls agree on one key (the file is created with `create_new`; the loser reads it).
    pub fn load_or_create(data_dir: &Path) -> Result<Self, LocalIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| LocalIssuerError::Io { path: path.clone(), source };
        match std::fs::read(&path) {
            Ok(der) => Self::from_pkcs8(&der).ok_or_else(|| LocalIssuerError::BadKey(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|_| LocalIssuerError::Sign("key generation failed".into()))?;
                let der = doc.as_ref().to_vec();
                // Write to a private temp file, then link it into place without overwriting a
                // key another process created meanwhile.
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create(true).truncate(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::OpenOptionsExt as _;
                        options.mode(0o600);
                    }
                    let mut f = options.open(&tmp).map_err(io)?;
                    f.write_all(&der).map_err(io)?;
                    f.sync_all().map_err(io)?;
                }
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Self::from_pkcs8(&der).ok_or(LocalIssuerError::BadKey(path)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let der = std::fs::read(&path).map_err(io)?;
                        Self::from_pkcs8(&der).ok_or(LocalIssuerError::BadKey(path))
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?;
        let key = EncodingKey::from_ec_der(der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).ok()?;
        let thumb = jwk.thumbprint(ThumbprintHash::SHA256).ok()?;
        let kid: String = thumb.chars().take(16).collect();
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Some(Self { kid, key: Arc::new(key), jwk })
    }

    /// The key id in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.jwk.clone()] }
    }

    /// The verifier configuration matching this issuer's tokens.
    pub fn jwt_config(&self) -> JwtConfig {
        JwtConfig::new(LOCAL_ISSUER, vec![LOCAL_AUDIENCE.to_owned()])
    }

    /// A verifier for this issuer's tokens that reads the key directly (no HTTP to itself).
    pub fn verifier(&self) -> Result<JwtVerifier, JwtConfigError> {
        JwtVerifier::with_fetcher(self.jwt_config(), Arc::new(StaticJwks(self.jwks())))
    }

    /// Mints an access token for `producer` (`sub` and `client_id`) with `scopes`, valid from now
    /// for `ttl`.
    pub fn mint(&self, producer: &str, scopes: &[&str], ttl: Duration) -> Result<String, LocalIssuerError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let exp = now.saturating_add(ttl.as_secs());
        self.sign(&json!({
            "iss": LOCAL_ISSUER,
            "aud": LOCAL_AUDIENCE,
            "sub": producer,
            "client_id": producer,
            "token_use": "access",
            "scope": scopes.join(" "),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid_like(),
        }))
    }

    /// Signs arbitrary `claims` with the issuer key (ES256, this issuer's `kid`); for tools and
    /// tests that need unusual tokens.
    pub fn sign(&self, claims: &Value) -> Result<String, LocalIssuerError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| LocalIssuerError::Sign(e.to_string()))
    }
}

/// 128 random bits, hex (the token id).
fn uuid_like() -> String {
    use rand::Rng as _;
    format!("{:032x}", rand::rng().random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalIssuer::load_or_create(dir.path()).unwrap();
        let b = LocalIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(a.kid(), b.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = LocalIssuer::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(a.kid(), other.kid());
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("auth")).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        assert!(matches!(LocalIssuer::load_or_create(dir.path()), Err(LocalIssuerError::BadKey(_))));
    }

    #[tokio::test]
    async fn minted_tokens_verify() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
        let token = issuer.mint("shop", &[crate::auth::SCOPE_EVENTS_WRITE], Duration::from_secs(60)).unwrap();
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
        let p = issuer.verifier().unwrap().verify(&token, now).await.unwrap();
        assert_eq!(p.producer, "shop");
        assert!(p.require(crate::auth::SCOPE_EVENTS_WRITE).is_ok());
    }
}
