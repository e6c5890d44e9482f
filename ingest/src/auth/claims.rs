//! The pure claim checks of a verified JWT (time passed in).

use serde::Deserialize;

use super::{AuthError, Principal};

/// A string or an array of strings (`aud`, `scp`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[String]) = match self {
            Self::One(s) => (Some(s.as_str()), &[]),
            Self::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

/// The registered and Cognito claims sluice looks at (others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: Option<String>,
    /// Subject.
    pub sub: Option<String>,
    /// Audience(s) (absent in Cognito access tokens).
    pub aud: Option<OneOrMany>,
    /// Cognito app client id (access tokens).
    pub client_id: Option<String>,
    /// Expiry, Unix seconds (required).
    pub exp: Option<i64>,
    /// Not before, Unix seconds.
    pub nbf: Option<i64>,
    /// Issued at, Unix seconds.
    pub iat: Option<i64>,
    /// Cognito `access` or `id`.
    pub token_use: Option<String>,
    /// Space-separated scopes (OAuth 2 / Cognito).
    pub scope: Option<String>,
    /// Scopes as an array (some IdPs).
    pub scp: Option<OneOrMany>,
}

/// What the claims must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// The exact expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values or Cognito app client ids (`client_id`); at least one must match.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
    pub leeway_secs: i64,
}

/// Checks `claims` at Unix time `now`; on success the caller's [`Principal`].
///
/// Order (first failure wins): `iss`, `exp` (required), `nbf`, `iat`, `token_use`, audience,
/// producer id (`client_id`, else `sub`).
pub fn check(claims: &Claims, rules: &ClaimRules, now: i64) -> Result<Principal, AuthError> {
    if claims.iss.as_deref() != Some(rules.issuer.as_str()) {
        return Err(AuthError::WrongIssuer);
    }
    let exp = claims.exp.ok_or_else(|| AuthError::InvalidClaims("exp is required".into()))?;
    if now > exp.saturating_add(rules.leeway_secs) {
        return Err(AuthError::Expired);
    }
    let earliest = now.saturating_add(rules.leeway_secs);
    if claims.nbf.is_some_and(|nbf| nbf > earliest) || claims.iat.is_some_and(|iat| iat > earliest) {
        return Err(AuthError::NotYetValid);
    }
    if claims.token_use.as_deref().is_some_and(|u| u != "access") {
        return Err(AuthError::WrongTokenUse);
    }
    let accepted = |v: &str| rules.audiences.iter().any(|a| a == v);
    let aud_ok = claims.aud.as_ref().is_some_and(|aud| aud.iter().any(accepted));
    let client_ok = claims.client_id.as_deref().is_some_and(accepted);
    if !(aud_ok || client_ok) {
        return Err(AuthError::WrongAudience);
    }
    let producer = claims
        .client_id
        .as_deref()
        .or(claims.sub.as_deref())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AuthError::InvalidClaims("client_id or sub is required".into()))?;
    let mut scopes: Vec<String> = claims.scope.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    if let Some(scp) = &claims.scp {
        scopes.extend(scp.iter().flat_map(str::split_whitespace).map(str::to_owned));
    }
    Ok(Principal { producer: producer.to_owned(), scopes, all_scopes: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> ClaimRules {
        ClaimRules { issuer: "https://iss".into(), audiences: vec!["client-a".into(), "api".into()], leeway_secs: 30 }
    }

    fn good() -> Claims {
        Claims {
            iss: Some("https://iss".into()),
            sub: Some("subject".into()),
            client_id: Some("client-a".into()),
            exp: Some(2_000),
            iat: Some(1_000),
            token_use: Some("access".into()),
            scope: Some("sluice/events.write other".into()),
            ..Claims::default()
        }
    }

    #[test]
    fn table() {
        type Edit = fn(&mut Claims);
        let cases: &[(&str, Edit, i64, Result<(), AuthError>)] = &[
            ("valid", |_| {}, 1_500, Ok(())),
            ("exp within leeway", |_| {}, 2_030, Ok(())),
            ("expired", |_| {}, 2_031, Err(AuthError::Expired)),
            ("iat within leeway", |_| {}, 970, Ok(())),
            ("iat in the future", |_| {}, 969, Err(AuthError::NotYetValid)),
            ("nbf in the future", |c| c.nbf = Some(1_600), 1_500, Err(AuthError::NotYetValid)),
            ("wrong iss", |c| c.iss = Some("https://evil".into()), 1_500, Err(AuthError::WrongIssuer)),
            ("no iss", |c| c.iss = None, 1_500, Err(AuthError::WrongIssuer)),
            ("no exp", |c| c.exp = None, 1_500, Err(AuthError::InvalidClaims("exp is required".into()))),
            ("id token", |c| c.token_use = Some("id".into()), 1_500, Err(AuthError::WrongTokenUse)),
            ("other client", |c| c.client_id = Some("client-b".into()), 1_500, Err(AuthError::WrongAudience)),
            (
                "aud array",
                |c| {
                    c.client_id = None;
                    c.aud = Some(OneOrMany::Many(vec!["x".into(), "api".into()]));
                },
                1_500,
                Ok(()),
            ),
            (
                "wrong aud",
                |c| {
                    c.client_id = None;
                    c.aud = Some(OneOrMany::One("x".into()));
                },
                1_500,
                Err(AuthError::WrongAudience),
            ),
        ];
        for (name, edit, now, expected) in cases {
            let mut c = good();
            edit(&mut c);
            assert_eq!(check(&c, &rules(), *now).map(|_| ()), *expected, "{name}");
        }
    }

    #[test]
    fn producer_is_client_id_else_sub_and_scopes_are_split() {
        let p = check(&good(), &rules(), 1_500).unwrap();
        assert_eq!(p.producer, "client-a");
        assert_eq!(p.scopes, vec!["sluice/events.write", "other"]);
        let mut c = good();
        c.client_id = None;
        c.aud = Some(OneOrMany::One("api".into()));
        c.scope = None;
        c.scp = Some(OneOrMany::Many(vec!["a".into(), "b".into()]));
        let p = check(&c, &rules(), 1_500).unwrap();
        assert_eq!(p.producer, "subject");
        assert_eq!(p.scopes, vec!["a", "b"]);
    }

    #[test]
    fn claims_deserialize_cognito_shape() {
        let c: Claims = serde_json::from_str(
            r#"{"sub":"s","iss":"i","client_id":"c","token_use":"access","scope":"a b","exp":5,"iat":1,"jti":"x","version":2}"#,
        )
        .unwrap();
        assert_eq!(c.client_id.as_deref(), Some("c"));
        assert!(serde_json::from_str::<Claims>(r#"{"exp":"soon"}"#).is_err());
    }

    proptest! {
        #[test]
        fn accepted_iff_inside_the_window(exp in 0i64..10_000, now in 0i64..10_000, leeway in 0i64..120) {
            let mut c = good();
            c.exp = Some(exp);
            c.iat = None;
            let r = ClaimRules { leeway_secs: leeway, ..rules() };
            let ok = check(&c, &r, now).is_ok();
            prop_assert_eq!(ok, now <= exp + leeway);
        }
    }
}
