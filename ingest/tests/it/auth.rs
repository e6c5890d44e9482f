//! Token verification with tokens from the local issuer and from moto's Cognito (JWKS fetched
//! over HTTP from moto): valid, expired, not yet valid, wrong issuer, wrong audience/client,
//! missing scope, alg none, HS256 signed with the public key, unknown kid, tampered payload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cognitoidentityprovider as cognito;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sluice_ingest::auth::{AuthError, JwtConfig, JwtVerifier, LocalIssuer, Principal};
use sluice_ingest::{AppState, Authenticator, SCOPE_EVENTS_WRITE};

use crate::support::*;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let p = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (h, p, it.next().unwrap().to_owned())
}

/// `alg: none` with the original claims and an empty signature.
fn alg_none(token: &str) -> String {
    let (mut h, p, _) = parts(token);
    h["alg"] = json!("none");
    format!("{}.{}.", b64(&h), b64(&p))
}

/// The claims changed (producer swapped), header and signature kept.
fn tampered(token: &str) -> String {
    let (h, mut p, sig) = parts(token);
    p["client_id"] = json!("mallory");
    p["sub"] = json!("mallory");
    format!("{}.{}.{sig}", b64(&h), b64(&p))
}

/// The header's kid replaced (signature kept).
fn with_kid(token: &str, kid: &str) -> String {
    let mut it = token.splitn(2, '.');
    let (mut h, _, _) = parts(token);
    h["kid"] = json!(kid);
    let _ = it.next();
    format!("{}.{}", b64(&h), it.next().unwrap())
}

/// HS256 over the original claims with the public JWKS document as the HMAC secret (the
/// classic algorithm-confusion attack).
fn hs256_with_public_key(token: &str, kid: &str, public_jwks: &[u8]) -> String {
    let (_, p, _) = parts(token);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &p, &jsonwebtoken::EncodingKey::from_secret(public_jwks)).unwrap()
}

async fn verify(v: &JwtVerifier, token: &str, at: i64) -> Result<Principal, AuthError> {
    v.verify(token, at).await
}

fn local() -> (tempfile::TempDir, LocalIssuer) {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
    (dir, issuer)
}

#[tokio::test]
async fn local_issuer_tokens() {
    let (_dir, issuer) = local();
    let (_other_dir, other) = local();
    let v = issuer.verifier().unwrap();
    let t = now();
    let base = json!({"iss": "sluice-local", "aud": "sluice", "sub": "p", "client_id": "p",
        "token_use": "access", "scope": SCOPE_EVENTS_WRITE, "iat": t, "exp": t + 300});
    let claims = |edit: &dyn Fn(&mut Value)| {
        let mut c = base.clone();
        edit(&mut c);
        issuer.sign(&c).unwrap()
    };
    let valid = issuer.mint("p", &[SCOPE_EVENTS_WRITE], Duration::from_secs(300)).unwrap();
    let public = serde_json::to_vec(&issuer.jwks()).unwrap();
    let mut no_kid_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    no_kid_header.kid = None;
    let cases: Vec<(&str, String, Result<(), AuthError>)> = vec![
        ("valid", valid.clone(), Ok(())),
        ("expired", claims(&|c| c["exp"] = json!(t - 120)), Err(AuthError::Expired)),
        ("not yet valid (nbf)", claims(&|c| c["nbf"] = json!(t + 600)), Err(AuthError::NotYetValid)),
        ("wrong issuer", claims(&|c| c["iss"] = json!("https://evil.example")), Err(AuthError::WrongIssuer)),
        ("wrong audience", claims(&|c| c["aud"] = json!("other-api")), Err(AuthError::WrongAudience)),
        ("id token", claims(&|c| c["token_use"] = json!("id")), Err(AuthError::WrongTokenUse)),
        ("alg none", alg_none(&valid), Err(AuthError::AlgorithmNotAllowed("none".into()))),
        (
            "HS256 with the public key",
            hs256_with_public_key(&valid, issuer.kid(), &public),
            Err(AuthError::AlgorithmNotAllowed("HS256".into())),
        ),
        (
            "unknown kid",
            other.mint("p", &[SCOPE_EVENTS_WRITE], Duration::from_secs(60)).unwrap(),
            Err(AuthError::UnknownKey(other.kid().into())),
        ),
        (
            "other key, our kid",
            with_kid(&other.mint("p", &[SCOPE_EVENTS_WRITE], Duration::from_secs(60)).unwrap(), issuer.kid()),
            Err(AuthError::BadSignature),
        ),
        ("tampered payload", tampered(&valid), Err(AuthError::BadSignature)),
        ("missing kid", with_kid(&valid, ""), Err(AuthError::MissingKeyId)),
        ("garbage", "a.b.c".into(), Err(AuthError::Malformed("header is not base64url".into()))),
    ];
    for (name, token, expected) in cases {
        let got = verify(&v, &token, t).await.map(|_| ());
        assert_eq!(got, expected, "{name}");
    }
    let p = verify(&v, &valid, t).await.unwrap();
    assert_eq!(p.producer, "p");
    assert!(p.require(SCOPE_EVENTS_WRITE).is_ok());
    let no_scope = issuer.mint("p", &[], Duration::from_secs(60)).unwrap();
    assert_eq!(
        verify(&v, &no_scope, t).await.unwrap().require(SCOPE_EVENTS_WRITE),
        Err(AuthError::MissingScope(SCOPE_EVENTS_WRITE.into()))
    );
    // A cached valid token still expires.
    assert_eq!(verify(&v, &valid, t + 301 + 30).await.map(|_| ()), Err(AuthError::Expired));
}

#[tokio::test]
async fn every_rejected_token_is_401_problem_through_the_router() {
    let env = Env::new(memory());
    let t = now();
    let expired =
        env.issuer.sign(&json!({"iss": "sluice-local", "aud": "sluice", "sub": "p", "exp": t - 100})).unwrap();
    let valid = env.token("p");
    for token in [expired, alg_none(&valid), tampered(&valid), hs256_with_public_key(&valid, env.issuer.kid(), b"x")] {
        let (status, headers, _) = send(env.app(), post_events(Some(&token), page_view(&uuid(1)).to_string())).await;
        assert_eq!(status, 401, "{token}");
        assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
    }
}

#[tokio::test]
async fn unreachable_jwks_is_503_not_401() {
    let mut config = JwtConfig::new("https://issuer.example", vec!["c".into()]);
    config.jwks_url = Some("http://127.0.0.1:9/jwks.json".parse().unwrap());
    let auth = Authenticator::jwt(JwtVerifier::from_config(config).unwrap());
    let app = sluice_ingest::app(AppState::builder(registry(), memory(), auth).build());
    let (_, issuer) = local();
    let token = issuer.mint("p", &[SCOPE_EVENTS_WRITE], Duration::from_secs(60)).unwrap();
    let (status, headers, _) = send(app, post_events(Some(&token), page_view(&uuid(1)).to_string())).await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
}

/// A moto Cognito user pool with the sluice resource server, a client-credentials app client
/// and a user to sign in with (moto 5.2.5 has no `/oauth2/token`, so tokens come from
/// AdminInitiateAuth; their scope is always `aws.cognito.signin.user.admin`).
struct Pool {
    id: String,
    client_id: String,
    access: String,
    id_token: String,
    issuer: String,
    jwks_url: String,
}

async fn pool(config: &sluice_aws::SdkConfig, endpoint: &str) -> Pool {
    use cognito::types::*;
    let c = cognito::Client::new(config);
    let name = sluice_testkit::moto::unique_name("pool");
    let pool = c.create_user_pool().pool_name(&name).send().await.unwrap();
    let id = pool.user_pool().unwrap().id().unwrap().to_owned();
    c.create_resource_server()
        .user_pool_id(&id)
        .identifier("sluice")
        .name("sluice")
        .scopes(
            ResourceServerScopeType::builder()
                .scope_name("events.write")
                .scope_description("post events")
                .build()
                .unwrap(),
        )
        .scopes(
            ResourceServerScopeType::builder()
                .scope_name("metrics.read")
                .scope_description("read metrics")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let client = c
        .create_user_pool_client()
        .user_pool_id(&id)
        .client_name("producer")
        .generate_secret(true)
        .allowed_o_auth_flows(OAuthFlowType::ClientCredentials)
        .allowed_o_auth_flows_user_pool_client(true)
        .allowed_o_auth_scopes(SCOPE_EVENTS_WRITE)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
        .send()
        .await
        .unwrap();
    let client_id = client.user_pool_client().unwrap().client_id().unwrap().to_owned();
    c.admin_create_user().user_pool_id(&id).username("producer-user").send().await.unwrap();
    c.admin_set_user_password()
        .user_pool_id(&id)
        .username("producer-user")
        .password("Sluice-test-1!")
        .permanent(true)
        .send()
        .await
        .unwrap();
    let auth = c
        .admin_initiate_auth()
        .user_pool_id(&id)
        .client_id(&client_id)
        .auth_flow(AuthFlowType::AdminUserPasswordAuth)
        .auth_parameters("USERNAME", "producer-user")
        .auth_parameters("PASSWORD", "Sluice-test-1!")
        .send()
        .await
        .unwrap();
    let result = auth.authentication_result().unwrap();
    Pool {
        issuer: format!("https://cognito-idp.us-east-1.amazonaws.com/{id}"),
        jwks_url: format!("{}/{id}/.well-known/jwks.json", endpoint.trim_end_matches('/')),
        access: result.access_token().unwrap().to_owned(),
        id_token: result.id_token().unwrap().to_owned(),
        id,
        client_id,
    }
}

fn cognito_verifier(issuer: &str, client: &str, jwks_url: &str) -> JwtVerifier {
    let mut config = JwtConfig::new(issuer, vec![client.to_owned()]);
    config.jwks_url = Some(jwks_url.parse().unwrap());
    JwtVerifier::from_config(config).unwrap()
}

#[tokio::test]
async fn cognito_tokens_from_moto() {
    let Some(config) = sluice_testkit::moto::moto().await else { return };
    let endpoint = sluice_testkit::moto::moto_endpoint().unwrap().to_string();
    let a = pool(&config, &endpoint).await;
    let b = pool(&config, &endpoint).await;
    let v = cognito_verifier(&a.issuer, &a.client_id, &a.jwks_url);
    let (header, claims, _) = parts(&a.access);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().unwrap().to_owned();
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    let t = now();

    // Valid: signature checked with moto's JWKS, iss, client_id, token_use, exp.
    let p = verify(&v, &a.access, t).await.unwrap();
    assert_eq!(p.producer, a.client_id, "producer = client_id");
    // moto's access tokens carry only aws.cognito.signin.user.admin: no sluice scope -> 403.
    assert_eq!(p.require(SCOPE_EVENTS_WRITE), Err(AuthError::MissingScope(SCOPE_EVENTS_WRITE.into())));
    assert!(p.require("aws.cognito.signin.user.admin").is_ok());

    let public = {
        use http_body_util::BodyExt;
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let resp = client.get(a.jwks_url.parse().unwrap()).await.unwrap();
        resp.into_body().collect().await.unwrap().to_bytes().to_vec()
    };
    let cases: Vec<(&str, String, i64, Result<(), AuthError>)> = vec![
        ("expired", a.access.clone(), exp + 31, Err(AuthError::Expired)),
        ("not yet valid", a.access.clone(), iat - 31, Err(AuthError::NotYetValid)),
        ("id token", a.id_token.clone(), t, Err(AuthError::WrongTokenUse)),
        ("alg none", alg_none(&a.access), t, Err(AuthError::AlgorithmNotAllowed("none".into()))),
        (
            "HS256 with the public key",
            hs256_with_public_key(&a.access, &kid, &public),
            t,
            Err(AuthError::AlgorithmNotAllowed("HS256".into())),
        ),
        ("unknown kid", with_kid(&a.access, "rotated-away"), t, Err(AuthError::UnknownKey("rotated-away".into()))),
        ("tampered payload", tampered(&a.access), t, Err(AuthError::BadSignature)),
        // Pool b's token: moto signs every pool with the same key, so only the iss check stops it.
        ("other pool (wrong issuer)", b.access.clone(), t, Err(AuthError::WrongIssuer)),
    ];
    for (name, token, at, expected) in cases {
        assert_eq!(verify(&v, &token, at).await.map(|_| ()), expected, "{name}");
    }
    // Wrong app client: same pool, verifier accepting only another client id.
    let other_client = cognito_verifier(&a.issuer, "some-other-client", &a.jwks_url);
    assert_eq!(verify(&other_client, &a.access, t).await.map(|_| ()), Err(AuthError::WrongAudience));

    // Through the Router: the default scope is missing (403); with the write scope mapped to
    // moto's scope (an IdP whose resource server is named differently) the post is accepted.
    let body = page_view(&uuid(1)).to_string();
    let auth = Authenticator::jwt(cognito_verifier(&a.issuer, &a.client_id, &a.jwks_url));
    let app = sluice_ingest::app(AppState::builder(registry(), memory(), auth.clone()).build());
    assert_eq!(send(app, post_events(Some(&a.access), body.clone())).await.0, 403);
    let log = memory();
    let state = AppState::builder(registry(), log.clone(), auth).write_scope("aws.cognito.signin.user.admin").build();
    assert_eq!(send(sluice_ingest::app(state), post_events(Some(&a.access), body)).await.0, 202);
    let event = registry().decode_stored(&log.records()[0].1.data).unwrap();
    assert_eq!(event.producer, a.client_id);
    let _ = a.id;
}

#[tokio::test]
async fn sluice_token_and_sluice_up_share_the_key_through_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    // `sluice token` first (creates the key), then the server loads the same key.
    let token =
        sluice_ingest::auth::mint_token(dir.path(), "cli", &[SCOPE_EVENTS_WRITE], Duration::from_secs(60)).unwrap();
    let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
    let log = memory();
    let state = AppState::builder(registry(), log.clone(), Authenticator::jwt(issuer.verifier().unwrap())).build();
    let (status, _, _) =
        send(sluice_ingest::app(state), post_events(Some(&token), page_view(&uuid(1)).to_string())).await;
    assert_eq!(status, 202);
    assert_eq!(registry().decode_stored(&log.records()[0].1.data).unwrap().producer, "cli");
}
