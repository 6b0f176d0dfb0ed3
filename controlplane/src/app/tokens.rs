//! Tokens (docs/design.md §4): creating, listing and revoking them, the bootstrap admin token,
//! the in-memory [`TokenCache`] every request is authenticated against, and the [`Standing`]
//! of a long-lived request. The rules (roles, hashing) are [`crate::domain::auth`]'s; the HTTP
//! guard over them is `http::access`.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use anyhow::Context as _;
use tokio::sync::watch;

use crate::app::state::AppState;
use crate::clock::to_unix_ms;
use crate::domain::auth::{self, Principal, Role, Token};
use crate::domain::ids::UserId;
use crate::store::{self, Store, StoreError, StoreExt as _, UnixMs, UserRecord, Writes};

pub use crate::store::TokenRecord;

/// Why a token operation failed. Mapped to HTTP once, in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token with id {0}")]
    UnknownToken(String),
    #[error("no random identifier from the OS: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
pub struct Cached {
    pub id: String,
    pub role: Role,
    /// The token's user, parsed here once so no request re-parses it.
    pub user_id: Option<UserId>,
    pub revoked: bool,
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

/// A stored token as the cache holds it; `None` for a token whose user id is not one (every
/// token written by this process names a parsed [`UserId`], so only a database edited by hand
/// holds one): such a token authenticates nothing, and a warning says why.
fn cached(t: &TokenRecord) -> Option<Cached> {
    let user_id = match t.user_id.as_deref().map(UserId::parse).transpose() {
        Ok(user_id) => user_id,
        Err(e) => {
            tracing::warn!(token = %t.id, "token refused: its user id is unreadable: {e}");
            return None;
        }
    };
    Some(Cached {
        id: t.id.clone(),
        role: role_from_store(t.role),
        user_id,
        revoked: !t.is_active(),
    })
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
            tokens
                .iter()
                .filter_map(|t| Some((t.token_hash.0, cached(t)?)))
                .collect(),
        ))
    }

    /// The token whose hash is `hash`, revoked or not.
    pub fn lookup(&self, hash: &auth::TokenHash) -> Option<Cached> {
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
            if let Some(c) = cached(&t) {
                map.insert(t.token_hash.0, c);
            }
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

// ---- bootstrap ----

fn now(state: &AppState) -> UnixMs {
    to_unix_ms(state.clock().now_ms())
}

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
    let token = new_token()?;
    create_admin(random_id("tok-")?, &token)?;
    Ok(Some(token))
}

/// A new record id, `prefix` then 16 hex digits (a token's id, never its secret).
fn random_id(prefix: &str) -> Result<String, TokenError> {
    getrandom::u64()
        .map(|n| format!("{prefix}{n:016x}"))
        .map_err(TokenError::Random)
}

/// A new token from the OS's random number generator; none to give is an error, not a
/// predictable token.
fn new_token() -> Result<Token, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
    Ok(Token::from_random(bytes))
}

// ---- token administration ----

/// A token just made: its record and, this once, the token in the clear.
pub struct NewToken {
    pub record: TokenRecord,
    pub token: Token,
}

/// Creates a token for `user_id` (the user is created, or given the role, as needed).
pub fn create_token(
    state: &AppState,
    role: Role,
    user_id: Option<UserId>,
    display_name: Option<String>,
) -> Result<NewToken, TokenError> {
    let user_id = user_id.map(String::from);
    let token = new_token()?;
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
    Ok(NewToken { record, token })
}

/// Every token, revoked ones too.
pub fn tokens(state: &AppState) -> Result<Vec<TokenRecord>, TokenError> {
    Ok(state.store().read(|r| r.tokens())?)
}

/// Revokes a token: refused from then on, at once.
pub fn revoke_token(state: &AppState, id: &str) -> Result<TokenRecord, TokenError> {
    let at = now(state);
    state
        .tokens()
        .write(state.store(), |w| w.revoke_token(id, at))?;
    state
        .store()
        .read(|r| r.token(id))?
        .ok_or_else(|| TokenError::UnknownToken(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// A token as the store keeps it, for `user`.
    fn stored(id: &str, token: &Token, user: Option<&str>) -> TokenRecord {
        TokenRecord {
            id: id.to_owned(),
            token_hash: store::TokenHash(token.hash().0),
            role: store::Role::Agent,
            user_id: user.map(str::to_owned),
            created_at: UnixMs(1),
            revoked_at: None,
        }
    }

    /// The cache parses a token's user id once, when it loads it: a request's principal carries
    /// the [`UserId`]; a stored user id that is not one (a database edited by hand)
    /// authenticates nothing rather than a principal without its user.
    #[test]
    fn the_cache_parses_each_token_user_once() {
        let store = SqliteStore::open_in_memory().unwrap();
        let (good, bad, service) = (
            new_token().unwrap(),
            new_token().unwrap(),
            new_token().unwrap(),
        );
        store
            .write(|w| {
                for user in ["ag-1", "not an id"] {
                    w.create_user(&UserRecord {
                        id: user.to_owned(),
                        display_name: user.to_owned(),
                        phone_number: None,
                        roles: vec![store::Role::Agent],
                    })?;
                }
                w.create_token(&stored("tok-good", &good, Some("ag-1")))?;
                w.create_token(&stored("tok-bad", &bad, Some("not an id")))?;
                w.create_token(&stored("tok-svc", &service, None))
            })
            .unwrap();
        let cache = TokenCache::load(&store).unwrap();
        let found = cache.lookup(&good.hash()).expect("the good token");
        assert_eq!(found.id, "tok-good");
        assert_eq!(found.user_id, Some(UserId::parse("ag-1").unwrap()));
        assert!(cache.lookup(&bad.hash()).is_none(), "an unreadable user id");
        assert_eq!(cache.lookup(&service.hash()).unwrap().user_id, None);
    }

    #[test]
    fn new_tokens_and_ids_are_random() {
        let t = new_token().unwrap();
        assert!(t.expose().starts_with("es_"), "{}", t.expose());
        assert_ne!(new_token().unwrap(), t);
        assert_ne!(random_id("tok-").unwrap(), random_id("tok-").unwrap());
    }
}
