//! Trusting API Gateway's JWT authorizer (Lambda only, explicit configuration).
//!
//! API Gateway HTTP APIs with a JWT authorizer have already verified the token (signature,
//! issuer, audience, expiry, and the route's scopes) and pass its claims in the request
//! context. In this mode the app reads the producer (`client_id`, else `sub`) and the scopes
//! (`scopes`, plus the `scope` claim) from there. A request without that context (not from API
//! Gateway, or a route without authorizer) is rejected: 401.

use axum::http::Extensions;
use lambda_http::request::RequestContext;

use super::{AuthError, Principal};

/// The principal from the API Gateway v2 authorizer context in the request `extensions`.
pub fn principal(extensions: &Extensions) -> Result<Principal, AuthError> {
    let Some(context) = extensions.get::<RequestContext>() else {
        return Err(AuthError::MissingToken);
    };
    #[allow(irrefutable_let_patterns, unreachable_patterns)]
    let RequestContext::ApiGatewayV2(context) = context else {
        return Err(AuthError::MissingToken);
    };
    let jwt = context.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).ok_or(AuthError::MissingToken)?;
    let producer = jwt
        .claims
        .get("client_id")
        .or_else(|| jwt.claims.get("sub"))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AuthError::InvalidClaims("authorizer claims carry no client_id or sub".into()))?;
    let mut scopes: Vec<String> = jwt.scopes.clone().unwrap_or_default();
    if let Some(scope) = jwt.claims.get("scope") {
        scopes.extend(scope.split_whitespace().map(str::to_owned));
    }
    Ok(Principal { producer: producer.clone(), scopes, all_scopes: false })
}
