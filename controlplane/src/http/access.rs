//! Access control at the HTTP boundary (SPEC §4): the bearer-token [`Principal`], the per-route
//! endpoint-class guard [`Authorized`], the in-memory token cache, the bootstrap admin token,
//! and the supervision-rights check with its audited denials. The rules themselves are
//! [`crate::domain::auth`]'s (pure); this module looks things up and answers in the API's errors.
//!
//! Every handler but `/healthz` and `/metrics` takes an [`Authorized<C>`] first, `C` naming its
//! [`EndpointClass`]: a route without one is unauthenticated, so the route table of
//! `tests/authz.rs` checks that every route answers 401 without a token.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{PoisonError, RwLock};

use tokio::sync::watch;

use anyhow::Context as _;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dataplane::media::matrix::Mode;

use crate::app::random::random_id;
use crate::app::state::AppState;
use crate::clock::to_unix_ms;
use crate::domain::agents::UserId;
use crate::domain::auth::{self, Denied, EndpointClass, Role, Token};
use crate::domain::ids::quote;
use crate::http::bodies::FromBody;
use crate::http::error::ApiError;
use crate::store::{
    self, NewAudit, Store, StoreError, StoreExt as _, TokenRecord, UnixMs, UserRecord, Writes,
};

// ---- roles between the store's column and the rules ----

pub fn role_from_store(role: store::Role) -> Role {
    match role {
        store::Role::Admin => Role::Admin,
        store::Role::Supervisor => Role::Supervisor,
        store::Role::Agent => Role::Agent,
        store::Role::Softswitch => Role::Softswitch,
    }
}

pub fn role_to_store(role: Role) -> store::Role {
    match role {
        Role::Admin => store::Role::Admin,
        Role::Supervisor => store::Role::Supervisor,
        Role::Agent => store::Role::Agent,
        Role::Softswitch => store::Role::Softswitch,
    }
}

// ---- the token cache ----

/// What a request's token resolves to.
#[derive(Debug, Clone)]
struct Cached {
    id: String,
    role: Role,
    user_id: Option<String>,
    revoked: bool,
}

/// Every token's hash, in memory, so authenticating a request takes no store access (the store
/// lock may be held across a durable commit). Only this process writes tokens, and every write
/// goes through [`TokenCache`] under its write lock, so the cache never disagrees with the store
/// once a write is acknowledged: a revocation takes effect with its answer, for new requests
/// and for the open event streams ([`Standing`]).
pub struct TokenCache {
    by_hash: RwLock<HashMap<[u8; 32], Cached>>,
    /// Bumped after every token write, before it is answered ([`Standing`] watches it).
    withdrawals: watch::Sender<u64>,
}

impl Default for TokenCache {
    fn default() -> TokenCache {
        TokenCache::with(HashMap::new())
    }
}

fn cached(t: &TokenRecord) -> Cached {
    Cached {
        id: t.id.clone(),
        role: role_from_store(t.role),
        user_id: t.user_id.clone(),
        revoked: !t.is_active(),
    }
}

impl TokenCache {
    fn with(by_hash: HashMap<[u8; 32], Cached>) -> TokenCache {
        TokenCache {
            by_hash: RwLock::new(by_hash),
            withdrawals: watch::Sender::new(0),
        }
    }

    /// Every token of the store.
    pub fn load(store: &dyn Store) -> anyhow::Result<TokenCache> {
        let tokens = store
            .read(|r| r.tokens())
            .context("cannot load the tokens")?;
        Ok(TokenCache::with(
            tokens.iter().map(|t| (t.token_hash.0, cached(t))).collect(),
        ))
    }

    fn lookup(&self, hash: &auth::TokenHash) -> Option<Cached> {
        let map = self.by_hash.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&hash.0).cloned()
    }

    /// Whether token `id` is known and not revoked. A linear scan: it runs only when a token
    /// was written ([`Standing`]), and token writes are rare administration.
    fn is_active(&self, id: &str) -> bool {
        let map = self.by_hash.read().unwrap_or_else(PoisonError::into_inner);
        map.values().any(|t| t.id == id && !t.revoked)
    }

    /// Runs `f` (a store write of tokens) with the cache locked, then reloads every token from
    /// the store (token writes are rare administration) and tells the open streams to re-check
    /// their tokens.
    fn write<R>(
        &self,
        store: &dyn Store,
        f: impl FnMut(&mut dyn Writes) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut map = self.by_hash.write().unwrap_or_else(PoisonError::into_inner);
        let out = store.write(f)?;
        for t in store.read(|r| r.tokens())? {
            map.insert(t.token_hash.0, cached(&t));
        }
        drop(map);
        self.withdrawals.send_modify(|n| *n = n.wrapping_add(1));
        Ok(out)
    }
}

// ---- authority of long-lived requests ----

/// Whether `principal` still holds the authority it was authenticated with: the one place a
/// request that outlives its authentication (an event stream, docs/api.md Events) re-checks
/// it. A token holds until it is revoked. A credential store that can take authority back (the
/// token cache; browser sessions when they come, signed out) answers here and bumps the channel
/// [`Standing`] watches when it does.
fn still_authorized(state: &AppState, principal: &Principal) -> bool {
    state.tokens().is_active(&principal.token_id)
}

/// A long-lived request's hold on its principal's authority (docs/api.md, Events: a revoked token
/// ends its open streams). Cheap to ask between events: the credentials are looked at again only
/// after one was written.
pub struct Standing {
    state: AppState,
    principal: Principal,
    withdrawals: watch::Receiver<u64>,
    /// Sticky: authority once lost is never regained by this request.
    holds: bool,
}

impl Standing {
    /// `principal`'s standing, from now on (it was authenticated just before).
    pub fn new(state: AppState, principal: Principal) -> Standing {
        let withdrawals = state.tokens().withdrawals.subscribe();
        Standing {
            state,
            principal,
            withdrawals,
            holds: true,
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn recheck(&mut self) -> bool {
        self.holds = self.holds && still_authorized(&self.state, &self.principal);
        self.holds
    }

    /// Whether the authority still holds (re-checked if a credential was written since).
    pub fn holds(&mut self) -> bool {
        // An error: the cache is gone, so is the daemon.
        if self.withdrawals.has_changed().unwrap_or(true) {
            self.withdrawals.borrow_and_update();
            self.recheck();
        }
        self.holds
    }

    /// Resolves once the authority is withdrawn (cancel-safe: for `select!`).
    pub async fn withdrawn(&mut self) {
        while self.holds() {
            if self.withdrawals.changed().await.is_err() {
                self.holds = false;
            } else {
                self.recheck();
            }
        }
    }
}

// ---- the principal ----

/// Who is calling: the token's user (none for service and bootstrap tokens), its roles and the
/// token's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Option<String>,
    /// A token acts with its own role only.
    pub roles: Vec<Role>,
    pub token_id: String,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// The audit log's actor: `user:<id>`, else `token:<id>`.
    pub fn actor(&self) -> String {
        match &self.user_id {
            Some(user) => format!("user:{user}"),
            None => format!("token:{}", self.token_id),
        }
    }
}

/// A 401: the error body and `WWW-Authenticate: Bearer` (RFC 6750 §3).
#[derive(Debug)]
pub struct Unauthorized(ApiError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let error = match self.0.code {
            "invalid_token" => r#"Bearer error="invalid_token""#,
            _ => "Bearer",
        };
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(error));
        response
    }
}

/// Why a request was not let through: 401 or 403.
#[derive(Debug)]
pub enum Rejection {
    Unauthenticated(Unauthorized),
    Forbidden(ApiError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Unauthenticated(e) => e.into_response(),
            Rejection::Forbidden(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Unauthorized> {
        let value = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Unauthorized(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    auth::Unauthenticated::Malformed.to_string(),
                ))
            })?),
        };
        let hash = auth::bearer(value).map_err(|e| {
            Unauthorized(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                e.to_string(),
            ))
        })?;
        match state.tokens().lookup(&hash) {
            Some(t) if !t.revoked => Ok(Principal {
                user_id: t.user_id,
                roles: vec![t.role],
                token_id: t.id,
            }),
            Some(_) => Err(Unauthorized(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token has been revoked",
            ))),
            None => Err(Unauthorized(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "unknown token",
            ))),
        }
    }
}

/// A route's endpoint class, as a type: `Authorized<Signalling>`.
pub trait Class: Send + Sync {
    const CLASS: EndpointClass;
}

macro_rules! classes {
    ($($name:ident),+) => {$(
        #[doc = concat!("[`EndpointClass::", stringify!($name), "`].")]
        pub struct $name;
        impl Class for $name {
            const CLASS: EndpointClass = EndpointClass::$name;
        }
    )+};
}
classes!(
    Administration,
    Signalling,
    Supervision,
    Console,
    AgentSelf,
    Read
);

/// The guard of a route of class `C`: an authenticated principal one of whose roles may call
/// `C` (else 403 `forbidden`).
pub struct Authorized<C>(pub Principal, pub PhantomData<C>);

impl<C: Class> FromRequestParts<AppState> for Authorized<C> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Rejection> {
        let principal = Principal::from_request_parts(parts, state)
            .await
            .map_err(Rejection::Unauthenticated)?;
        if principal.roles.iter().any(|r| auth::allowed(*r, C::CLASS)) {
            Ok(Authorized(principal, PhantomData))
        } else {
            let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "role {} may not call this endpoint ({:?} endpoints)",
                    roles.join(", "),
                    C::CLASS
                ),
            );
            if C::CLASS == EndpointClass::Supervision {
                // SPEC §4: every denial of a supervision is audited, this one too.
                let detail = format!(
                    "forbidden: role {}; {} {}",
                    roles.join(", "),
                    parts.method,
                    parts.uri.path()
                );
                let who = principal.clone();
                crate::http::api::blocking_api(state.clone(), move |s| {
                    audit(s, &who, None, detail)
                })
                .await
                .map_err(Rejection::Forbidden)?;
            }
            Err(Rejection::Forbidden(error))
        }
    }
}

/// Appends a `supervision.denial` record of `principal` (SPEC §4: every denial is audited).
pub fn audit(
    state: &AppState,
    principal: &Principal,
    call_id: Option<&str>,
    detail: String,
) -> Result<(), ApiError> {
    audit_denial(state, principal, None, call_id, None, detail)
}

/// [`audit`], with the supervision and the mode when the denial is of one.
fn audit_denial(
    state: &AppState,
    principal: &Principal,
    supervision_id: Option<&str>,
    call_id: Option<&str>,
    mode: Option<Mode>,
    detail: String,
) -> Result<(), ApiError> {
    let record = NewAudit {
        at: now(state),
        actor: principal.actor(),
        action: "supervision.denial".to_owned(),
        supervision_id: supervision_id.map(str::to_owned),
        call_id: call_id.map(str::to_owned),
        mode,
        outcome: "denied".to_owned(),
        detail: Some(detail),
    };
    state.store().write(|w| w.append_audit(&record))?;
    Ok(())
}

// ---- bootstrap ----

/// At start: the configured admin token is stored (its hash) as an admin token if it is not
/// yet; with none configured and no active admin token in the store, one is generated, stored
/// and returned (the caller shows it once). A configured token that was revoked is an error.
pub fn bootstrap_admin(
    state: &AppState,
    configured: Option<&str>,
) -> anyhow::Result<Option<Token>> {
    let store = state.store();
    let create_admin = |id: String, token: &Token| {
        let record = TokenRecord {
            id,
            token_hash: store::TokenHash(token.hash().0),
            role: store::Role::Admin,
            user_id: None,
            created_at: now(state),
            revoked_at: None,
        };
        state.tokens().write(store, |w| w.create_token(&record))
    };
    if let Some(text) = configured {
        let token = Token::from_config(text).context("auth.admin_token")?;
        let hash = store::TokenHash(token.hash().0);
        match store.read(|r| r.token_by_hash(&hash))? {
            Some(t) if t.is_active() => return Ok(None),
            Some(t) => anyhow::bail!(
                "the configured admin token (token {}) was revoked: configure another",
                t.id
            ),
            None => {}
        }
        // A fresh id: a token configured before (and since replaced) keeps its own.
        create_admin(random_id("tok-cfg-")?, &token)?;
        return Ok(None);
    }
    let has_admin = store.read(|r| {
        Ok(r.tokens()?
            .iter()
            .any(|t| t.is_active() && t.role == store::Role::Admin))
    })?;
    if has_admin {
        return Ok(None);
    }
    let token = Token::generate();
    create_admin(random_id("tok-")?, &token)?;
    Ok(Some(token))
}

// ---- token administration ----

/// A token as `GET /v1/tokens` shows it: never the secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenView {
    pub id: String,
    pub role: &'static str,
    pub user_id: Option<String>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> TokenView {
        TokenView {
            id: t.id.clone(),
            role: role_from_store(t.role).as_str(),
            user_id: t.user_id.clone(),
            created_at_ms: t.created_at.0,
            revoked_at_ms: t.revoked_at.map(|at| at.0),
        }
    }
}

/// `POST /v1/tokens`'s answer: the token in the clear, this once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewTokenView {
    #[serde(flatten)]
    pub meta: TokenView,
    pub token: String,
}

fn now(state: &AppState) -> UnixMs {
    to_unix_ms(state.clock().now_ms())
}

/// Creates a token for `user_id` (the user is created, or given the role, as needed).
pub fn create_token(
    state: &AppState,
    role: Role,
    user_id: Option<String>,
    display_name: Option<String>,
) -> Result<NewTokenView, ApiError> {
    let token = Token::generate();
    let id = random_id("tok-")?;
    let record = TokenRecord {
        id,
        token_hash: store::TokenHash(token.hash().0),
        role: role_to_store(role),
        user_id: user_id.clone(),
        created_at: now(state),
        revoked_at: None,
    };
    state.tokens().write(state.store(), |w| {
        if let Some(user) = &user_id {
            match w.user(user)? {
                None => w.create_user(&UserRecord {
                    id: user.clone(),
                    display_name: display_name.clone().unwrap_or_else(|| user.clone()),
                    phone_number: None,
                    roles: vec![role_to_store(role)],
                })?,
                Some(mut u) => {
                    let new_role = !u.roles.contains(&role_to_store(role));
                    if new_role {
                        u.roles.push(role_to_store(role));
                    }
                    if let Some(name) = &display_name {
                        u.display_name = name.clone();
                    }
                    if new_role || display_name.is_some() {
                        w.update_user(&u)?;
                    }
                }
            }
        }
        w.create_token(&record)
    })?;
    if let Some(user) = &user_id
        && let Some(record) = state.store().read(|r| r.user(user))?
    {
        state.center().user_changed(&record);
    }
    Ok(NewTokenView {
        meta: TokenView::from(&record),
        token: token.expose().to_owned(),
    })
}

pub fn tokens(state: &AppState) -> Result<Vec<TokenView>, ApiError> {
    let tokens = state.store().read(|r| r.tokens())?;
    Ok(tokens.iter().map(TokenView::from).collect())
}

/// Revokes a token: refused from then on, at once.
pub fn revoke_token(state: &AppState, id: &str) -> Result<TokenView, ApiError> {
    let at = now(state);
    state
        .tokens()
        .write(state.store(), |w| w.revoke_token(id, at))?;
    let token = state
        .store()
        .read(|r| r.token(id))?
        .ok_or_else(|| ApiError::not_found(format!("no token with id {id}")))?;
    Ok(TokenView::from(&token))
}

// ---- supervision rights ----

// Moved to app (the start of a supervision decides there, docs/design.md §4).
pub use crate::app::rights::rights_over;

/// Whether `principal` may supervise `agent` in `mode`: admins always; supervisors by their
/// group rights ([`auth::may_supervise`]). A denial is audited (SPEC §4), then answered 403
/// with the [`Denied`] code.
pub fn check_supervision(
    state: &AppState,
    principal: &Principal,
    agent: Option<&str>,
    mode: Mode,
    call_id: &str,
    supervision_id: Option<&str>,
    action: &str,
) -> Result<(), ApiError> {
    if principal.is_admin() {
        return Ok(());
    }
    let rights = match (principal.user_id.as_deref(), agent) {
        (Some(user), Some(agent)) => state.store().read(|r| rights_over(r, user, agent))?,
        _ => None,
    };
    let Err(denied) = auth::may_supervise(rights, mode) else {
        return Ok(());
    };
    let detail = format!(
        "{action}: {}; agent {}",
        denied.code(),
        agent.unwrap_or("(none)")
    );
    audit_denial(
        state,
        principal,
        supervision_id,
        Some(call_id),
        Some(mode),
        detail,
    )?;
    Err(denied_error(denied))
}

pub fn denied_error(denied: Denied) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, denied.code(), denied.to_string())
}

// ---- request bodies of the administration endpoints ----

/// `POST /v1/tokens`.
pub struct NewToken {
    pub role: Role,
    pub user_id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewToken {
    role: String,
    user_id: Option<String>,
    display_name: Option<String>,
}

impl FromBody for NewToken {
    type Raw = RawNewToken;
    fn parse(raw: RawNewToken) -> Result<NewToken, ApiError> {
        let role: Role = raw
            .role
            .parse()
            .map_err(|e: auth::UnknownRole| ApiError::invalid_body(format!("role: {e}")))?;
        let user_id = raw
            .user_id
            .map(|u| match UserId::parse(&u) {
                Ok(_) => Ok(u),
                Err(e) => Err(ApiError::invalid_body(format!(
                    "user_id: {}: {e}",
                    quote(&u)
                ))),
            })
            .transpose()?;
        if user_id.is_none() && matches!(role, Role::Supervisor | Role::Agent) {
            return Err(ApiError::invalid_body(format!(
                "user_id: required for a {role} token"
            )));
        }
        // The directory's own rule for a user's name (docs/api.md, Users): a name it would
        // refuse would make the user vanish from it.
        let display_name = raw
            .display_name
            .map(|name| {
                crate::domain::agents::check_label(
                    "display_name",
                    &name,
                    crate::domain::groups::LABEL_LEN_MAX,
                    "must be at most 128 characters",
                )
                .map_err(|e| ApiError::invalid_body(e.to_string()))
            })
            .transpose()?;
        Ok(NewToken {
            role,
            user_id,
            display_name,
        })
    }
}

/// `PUT /v1/groups/{id}/supervisors/{user}`: the rights (each `false` when absent).
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    #[serde(default)]
    pub listen: bool,
    #[serde(default)]
    pub intervene: bool,
    #[serde(default)]
    pub admin: bool,
}

impl crate::http::bodies::PlainBody for Rights {}

/// `PUT /v1/groups/{id}/members/{user}`.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    #[serde(default)]
    pub can_leave: bool,
}

impl crate::http::bodies::PlainBody for Membership {}
